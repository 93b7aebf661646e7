"""The polled job row every long-running task writes to (the NetBox ``core.Job`` pattern).

A Celery task loads its row, records status, stage, progress, per-stage timings, a heartbeat and the
error there, and the dashboard polls the row — never Celery's result store. Training runs, profile
runs, evaluation runs and tuning jobs all inherit :class:`JobRun`.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
import traceback
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from django.apps import apps
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from shop_recs.platform import executor, metrics
from shop_recs.platform.stages import stage_label
from shop_recs.stores.scoping import StoreOwned

logger = logging.getLogger(__name__)


class JobStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")


FINISHED_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED)


class JobRun(StoreOwned):
    """Columns shared by every polled job row: status, progress, timings, heartbeat and error."""

    status = models.CharField(_("status"), max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    stage = models.CharField(_("stage"), max_length=64, blank=True, default="")
    progress = models.PositiveSmallIntegerField(_("progress (%)"), default=0)
    timings = models.JSONField(_("seconds per stage"), default=dict, blank=True)
    error = models.TextField(_("error"), blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    # Bumped on every progress write; a "running" row whose heartbeat is old lost its worker.
    heartbeat_at = models.DateTimeField(_("last heartbeat"), null=True, blank=True)

    #: The error :func:`fail_stale_jobs` records on a row whose worker is gone.
    stale_error: ClassVar[str] = "The worker stopped reporting progress (killed or lost)."

    class Meta(StoreOwned.Meta):
        abstract = True

    @classmethod
    def stale_after(cls) -> timedelta:
        """How old a running row's heartbeat may get before its worker counts as gone.

        ``JOB_STALE_SECONDS`` (default 6 hours: jobs without a heartbeat thread only beat per stage).
        """
        return timedelta(seconds=settings.JOB_STALE_SECONDS)

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None

    def status_payload(self) -> dict[str, Any]:
        """What a page polls while the job works: plain JSON from the row, no Celery result store."""
        return {
            "id": self.pk,
            "status": self.status,
            "status_label": str(self.get_status_display()),
            "stage": stage_label(self.stage),
            "progress": self.progress,
            "finished": self.is_finished,
            "error": self.error.splitlines()[0] if self.error else "",
            "timings": self.timings,
        }


class JobProgress:
    """Records stage, percent, per-stage seconds and a heartbeat on a job row.

    Each call is one single-row UPDATE outside any transaction, so the polling page sees it at once.
    """

    def __init__(self, row: JobRun, on_progress: Callable[[str, int], None] | None = None) -> None:
        self.model, self.pk, self.on_progress = type(row), row.pk, on_progress
        self.timings: dict[str, float] = {}
        self._stage, self._t0 = "", 0.0

    def stage(self, name: str, percent: float) -> None:
        self._close()
        self._stage, self._t0 = name, time.perf_counter()
        self.update(percent)

    def update(self, percent: float) -> None:
        self.model.all_stores.filter(pk=self.pk).update(
            stage=self._stage[:64],
            progress=max(0, min(100, int(percent))),
            heartbeat_at=timezone.now(),
            timings=self.timings,
        )
        if self.on_progress is not None:
            self.on_progress(self._stage, int(percent))

    def _close(self) -> None:
        if self._stage:
            self.timings[self._stage] = round(self.timings.get(self._stage, 0.0) + time.perf_counter() - self._t0, 4)

    def finish(self) -> dict[str, float]:
        self._close()
        self._stage = ""
        return self.timings


# --- the lifecycle: enqueue, claim, progress (JobProgress), succeed or fail, the stale sweep --------


def enqueue_on_commit(task: Any, row: JobRun) -> None:
    """Send ``task.delay(row.pk)`` once the current transaction commits.

    Where it goes: to the broker's workers when there is one; in the embedded mode (Celery eager,
    no broker) to this web process's background pool (:mod:`shop_recs.platform.executor`), started
    after the response is sent, so the page returns at once and polls the row; in commands, shells
    and tests without a started pool, eagerly in the caller as before.

    If the broker is unreachable the row is failed at once with a clear message, so a queued row
    never waits forever (nor holds a per-store lock such as training's); the caller's request
    still succeeds and shows the failed row.
    """
    model, pk = type(row), row.pk
    transaction.on_commit(lambda: _enqueue_or_fail(task, model, pk))


def job_key(model: type[models.Model], pk: int) -> str:
    """``"app_label.model:pk"``: how the pool's ledger and the Tasks page name one job row."""
    return f"{model._meta.label_lower}:{pk}"


def _enqueue_or_fail(task: Any, model: type[JobRun], pk: int) -> None:
    pool = executor.current()
    if pool is not None and task.app.conf.task_always_eager:
        key = job_key(model, pk)
        executor.after_response(lambda: pool.submit(key, lambda: run_in_background(task, model, pk)))
        return
    try:
        task.delay(pk)
    except Exception as exc:  # noqa: BLE001 - kombu raises several connection error types
        logger.error("%s %s: could not enqueue the task (%s); marking it failed", model.__name__, pk, exc)
        n = model.all_stores.filter(pk=pk, status=JobStatus.QUEUED).update(
            status=JobStatus.FAILED,
            finished_at=timezone.now(),
            **_error_values(
                model, f"Could not reach the task queue ({type(exc).__name__}: {exc}); start it again later."
            ),
        )
        metrics.job_finished(job_kind(model), "not_enqueued", count=n)


def run_in_background(task: Any, model: type[JobRun], pk: int) -> None:
    """A pool thread's job: the task body with Celery's eager semantics (its retries included).

    Task bodies record their own failures on the row; anything that escapes them (a crash before
    the row was claimed, a bug, a database error after the retries) fails the row here with the
    reason, so no row stays queued or running behind a dead job.
    """
    try:
        task.apply(args=(pk,), throw=True)
    except Exception as exc:  # noqa: BLE001 - whatever the job raised is the reason shown on the row
        logger.exception("%s %s: the background job crashed", model.__name__, pk)
        row = model.all_stores.filter(pk=pk).first()
        if row is not None:
            fail(row, exc)


def start_background_jobs() -> executor.BackgroundExecutor | None:
    """Start this process's pool (embedded mode, ``JOB_EXECUTOR_THREADS`` > 0) and clean up after the last one.

    Rows that a previous process held in its pool when it stopped (a restart, a crash) are failed
    at once, queued ones too; then the usual stale sweep runs, since no beat runs in embedded mode.
    """
    if not settings.CELERY_TASK_ALWAYS_EAGER or settings.JOB_EXECUTOR_THREADS <= 0:
        return None
    pool, orphans = executor.start(settings.JOB_EXECUTOR_THREADS, Path(settings.VAR_DIR) / "jobs")
    try:
        for key in orphans:
            _fail_orphan(key)
        fail_stale_jobs()
    except Exception:  # noqa: BLE001 - housekeeping must never break the request that started the pool
        logger.exception("could not fail the job rows of stopped processes")
    return pool


#: The error an orphaned row gets: its process stopped while the row was queued or running.
ORPHAN_ERROR = "The web process running this job stopped (restart or crash) before it finished; start it again."


def _fail_orphan(key: str) -> None:
    label, _sep, pk = key.rpartition(":")
    try:
        model = apps.get_model(label)
    except (LookupError, ValueError):
        logger.warning("job ledger names an unknown model %r; ignoring it", label)
        return
    if not pk.isdigit() or model not in swept_models():
        return
    n = model.all_stores.filter(pk=int(pk), status__in=(JobStatus.QUEUED, JobStatus.RUNNING)).update(
        status=JobStatus.FAILED, finished_at=timezone.now(), **_error_values(model, ORPHAN_ERROR)
    )
    if n:
        logger.warning("%s: failed, its process stopped while it was open", key)
        metrics.job_finished(job_kind(model), "orphaned", count=n)


#: Whether this process has decided on its pool (at its first real request): later requests skip it.
_pool_decided = False


def _on_request_started(sender: Any, **kwargs: Any) -> None:
    # Only a real server starts the pool (the test client's handler is neither class), and every
    # request defers its jobs to the moment its response has been sent.
    global _pool_decided
    if not _pool_decided and isinstance(sender, type) and issubclass(sender, (WSGIHandler, ASGIHandler)):
        _pool_decided = True
        start_background_jobs()
    if executor.current() is not None:
        executor.begin_request()


def _on_request_finished(sender: Any, **kwargs: Any) -> None:
    executor.end_request()


request_started.connect(_on_request_started, dispatch_uid="shop_recs.platform.jobs.request_started")
request_finished.connect(_on_request_finished, dispatch_uid="shop_recs.platform.jobs.request_finished")


def claim(row: JobRun, *, statuses: Iterable[str] = (JobStatus.QUEUED,), **values: Any) -> bool:
    """Move ``row`` from one of ``statuses`` to RUNNING in one UPDATE and reload it.

    Returns ``False`` when the row is in none of ``statuses`` (another delivery has it, or it is
    finished). ``values`` are further columns to set, e.g. an attempt counter or the claiming
    worker (:func:`worker_identity`).

    A RUNNING row is taken over only if it is still the run this caller looked at (the same
    ``started_at``): each claim moves ``started_at``, so of two deliveries that both found the
    previous worker gone exactly one wins, and the other sees ``False``.
    """
    wanted = [str(s) for s in statuses]
    current = models.Q(status__in=[s for s in wanted if s != JobStatus.RUNNING])
    if JobStatus.RUNNING in wanted:
        current |= models.Q(status=JobStatus.RUNNING, started_at=row.started_at)
    now = timezone.now()
    claimed = (
        type(row)
        .all_stores.filter(current, pk=row.pk)
        .update(
            status=JobStatus.RUNNING, started_at=now, heartbeat_at=now, stage="starting", progress=0, error="", **values
        )
    )
    row.refresh_from_db()
    return bool(claimed)


#: Where a job row without a column of its own keeps the claiming worker (a JSON field's key).
WORKER_KEY = "_worker"


def worker_identity() -> str:
    """``"hostname:pid"`` of this process: what a claim records so a redelivery can tell whether the
    worker that held the row still exists. The hostname is the machine's (Celery's ``%h``, the host
    part of its node name); the pid is the pool child's own, the process that runs the task."""
    return f"{socket.gethostname()}:{os.getpid()}"


def worker_gone(identity: str | None) -> bool:
    """Whether the process named by ``identity`` (see :func:`worker_identity`) surely no longer exists.

    Only a process on this host can be checked (its pid is gone); for another host, an unknown or
    malformed identity, or this very process, the answer is ``False`` and callers fall back to the
    heartbeat's age. A pid reused by an unrelated process reads as alive: the safe direction.
    """
    host, _sep, pid = (identity or "").rpartition(":")
    if not host or host != socket.gethostname() or not pid.isascii() or not pid.isdigit():
        return False
    number = int(pid)
    if number <= 0 or number == os.getpid() or number > 2**22:  # 2**22: Linux's highest pid_max
        return False
    try:
        os.kill(number, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except OSError:  # PermissionError: it exists but belongs to another user
        return False
    return False


def succeed(row: JobRun, *, timings: dict[str, float] | None = None, **values: Any) -> bool:
    """Mark an unfinished row SUCCEEDED (stage "done", 100 %), with ``values`` (its results) written too."""
    now = timezone.now()
    fields: dict[str, Any] = {
        "status": JobStatus.SUCCEEDED,
        "stage": "done",
        "progress": 100,
        "finished_at": now,
        "heartbeat_at": now,
        **values,
    }
    if timings is not None:
        fields["timings"] = timings
    done = bool(type(row).all_stores.filter(pk=row.pk).exclude(status__in=FINISHED_STATUSES).update(**fields))
    if done:
        metrics.job_finished(job_kind(type(row)), "succeeded", _seconds_since(row.started_at, now))
    return done


def fail(row: JobRun, error: str | BaseException, *, timings: dict[str, float] | None = None, **values: Any) -> None:
    """Mark an unfinished row FAILED with ``error`` and ``finished_at`` (also on the instance).

    An exception is recorded as ``"Type: message"`` plus the current traceback (its last 4000 characters).
    """
    if isinstance(error, BaseException):
        error = f"{type(error).__name__}: {error}\n\n{traceback.format_exc()[-4000:]}"
    fields: dict[str, Any] = {
        "status": JobStatus.FAILED,
        "finished_at": timezone.now(),
        **_error_values(type(row), error),
        **values,
    }
    if timings is not None:
        fields["timings"] = timings
    # Only an open row (an import's "duplicate" is finished too, though not in FINISHED_STATUSES).
    n = type(row).all_stores.filter(pk=row.pk, status__in=(JobStatus.QUEUED, JobStatus.RUNNING)).update(**fields)
    if n:
        metrics.job_finished(job_kind(type(row)), "failed", _seconds_since(row.started_at, fields["finished_at"]))
    for name, value in fields.items():
        setattr(row, name, value)


def job_kind(model: type[models.Model]) -> str:
    """The ``kind`` label of a job row model in the metrics: ``"app_label.model"`` (a fixed set)."""
    return model._meta.label_lower


def _seconds_since(started_at: Any, finished_at: Any) -> float | None:
    """Claim-to-end seconds for the job metrics (``None`` for a row never claimed)."""
    if started_at is None or finished_at is None:
        return None
    return (finished_at - started_at).total_seconds()


def job_models() -> list[type[JobRun]]:
    """Every concrete job row model of the installed apps."""
    return [m for m in apps.get_models() if issubclass(m, JobRun)]


def swept_models() -> list[type[models.Model]]:
    """:func:`job_models` plus the job rows of their own shape that declare ``job_row = True`` (file
    imports): they have the columns the sweep and :func:`fail` write (status, finished_at,
    heartbeat_at, ``error_fields``) and a ``stale_after()``, so no dead worker leaves them running."""
    return [
        *job_models(),
        *(m for m in apps.get_models() if getattr(m, "job_row", False) and not issubclass(m, JobRun)),
    ]


def _error_values(model: type[models.Model], error: str) -> dict[str, str]:
    # A job row names the columns its reason goes to (an import shows ``message``); JobRun: ``error``.
    return dict.fromkeys(getattr(model, "error_fields", ("error",)), error)


def fail_stale_jobs(store: Any = None, models: Iterable[type[JobRun]] | None = None) -> int:
    """Fail running rows whose worker is gone: no heartbeat for longer than their model's ``stale_after()``.

    Runs on worker start-up and on every beat tick (every job model, every store; see
    ``training.tasks``) and before each ``start_training`` (that store's training runs), so a killed
    worker never leaves a row "running" nor a store locked. Returns how many rows were failed.
    """
    total = 0
    for model in swept_models() if models is None else models:
        now = timezone.now()
        # all stores: the sweep fails dead workers' rows in every store (one store when ``store`` is given).
        stale = model.all_stores.filter(status=JobStatus.RUNNING, heartbeat_at__lt=now - model.stale_after())
        if store is not None:
            stale = stale.filter(store=store)
        n = stale.update(status=JobStatus.FAILED, finished_at=now, **_error_values(model, model.stale_error))
        if n:
            logger.warning("marked %d stale %s row(s) as failed", n, model.__name__)
            metrics.job_finished(job_kind(model), "stale", count=n)
        total += n
    return total


def pause_for_fault_test(checkpoint: str) -> None:
    """Test hook only: sleep at ``checkpoint`` when ``settings.JOB_TEST_PAUSE`` (env
    ``SHOP_RECS_TEST_JOB_PAUSE``) is ``"<checkpoint>=<seconds>"``, so a fault test can SIGKILL the
    worker exactly there. It logs ``paused at fault-test checkpoint <name>`` first: the test waits
    for that line in the worker's output instead of guessing a time. A no-op when unset (production).
    """
    name, _sep, seconds = (settings.JOB_TEST_PAUSE or "").partition("=")
    if not name or name.strip() != checkpoint:
        return
    delay = float(seconds or 0)
    logger.warning("paused at fault-test checkpoint %s for %.1fs (SHOP_RECS_TEST_JOB_PAUSE)", checkpoint, delay)
    for handler in logging.getLogger().handlers:  # the test reads the worker's log file: flush now
        handler.flush()
    time.sleep(delay)


def json_safe(value: Any) -> Any:
    """Plain JSON for a job row's JSON columns: NaN/inf -> None, numpy -> Python (jsonb refuses NaN)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
