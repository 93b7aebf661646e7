"""The polled job row every long-running task writes to (the NetBox ``core.Job`` pattern).

A Celery task loads its row, records status, stage, progress, per-stage timings, a heartbeat and the
error there, and the dashboard polls the row — never Celery's result store. Training runs, profile
runs, evaluation runs and tuning jobs all inherit :class:`JobRun`.
"""

from __future__ import annotations

import logging
import math
import time
import traceback
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any, ClassVar

import numpy as np
from django.apps import apps
from django.conf import settings
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

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
            "stage": self.stage,
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

    If the broker is unreachable the row is failed at once with a clear message, so a queued row
    never waits forever (nor holds a per-store lock such as training's); the caller's request
    still succeeds and shows the failed row.
    """
    model, pk = type(row), row.pk
    transaction.on_commit(lambda: _enqueue_or_fail(task, model, pk))


def _enqueue_or_fail(task: Any, model: type[JobRun], pk: int) -> None:
    try:
        task.delay(pk)
    except Exception as exc:  # noqa: BLE001 - kombu raises several connection error types
        logger.error("%s %s: could not enqueue the task (%s); marking it failed", model.__name__, pk, exc)
        model.all_stores.filter(pk=pk, status=JobStatus.QUEUED).update(
            status=JobStatus.FAILED,
            finished_at=timezone.now(),
            error=f"Could not reach the task queue ({type(exc).__name__}: {exc}); start it again later.",
        )


def claim(row: JobRun, *, statuses: Iterable[str] = (JobStatus.QUEUED,), **values: Any) -> bool:
    """Move ``row`` from one of ``statuses`` to RUNNING in one UPDATE and reload it.

    Returns ``False`` when the row is in none of ``statuses`` (another delivery has it, or it is
    finished). ``values`` are further columns to set, e.g. an attempt counter.
    """
    now = timezone.now()
    claimed = (
        type(row)
        .all_stores.filter(pk=row.pk, status__in=list(statuses))
        .update(
            status=JobStatus.RUNNING, started_at=now, heartbeat_at=now, stage="starting", progress=0, error="", **values
        )
    )
    row.refresh_from_db()
    return bool(claimed)


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
    return bool(type(row).all_stores.filter(pk=row.pk).exclude(status__in=FINISHED_STATUSES).update(**fields))


def fail(row: JobRun, error: str | BaseException, *, timings: dict[str, float] | None = None, **values: Any) -> None:
    """Mark an unfinished row FAILED with ``error`` and ``finished_at`` (also on the instance).

    An exception is recorded as ``"Type: message"`` plus the current traceback (its last 4000 characters).
    """
    if isinstance(error, BaseException):
        error = f"{type(error).__name__}: {error}\n\n{traceback.format_exc()[-4000:]}"
    fields: dict[str, Any] = {"status": JobStatus.FAILED, "finished_at": timezone.now(), "error": error, **values}
    if timings is not None:
        fields["timings"] = timings
    type(row).all_stores.filter(pk=row.pk).exclude(status__in=FINISHED_STATUSES).update(**fields)
    for name, value in fields.items():
        setattr(row, name, value)


def job_models() -> list[type[JobRun]]:
    """Every concrete job row model of the installed apps."""
    return [m for m in apps.get_models() if issubclass(m, JobRun)]


def fail_stale_jobs(store: Any = None, models: Iterable[type[JobRun]] | None = None) -> int:
    """Fail running rows whose worker is gone: no heartbeat for longer than their model's ``stale_after()``.

    Runs on worker start-up and on every beat tick (every job model, every store; see
    ``training.tasks``) and before each ``start_training`` (that store's training runs), so a killed
    worker never leaves a row "running" nor a store locked. Returns how many rows were failed.
    """
    total = 0
    for model in job_models() if models is None else models:
        now = timezone.now()
        # all stores: the sweep fails dead workers' rows in every store (one store when ``store`` is given).
        stale = model.all_stores.filter(status=JobStatus.RUNNING, heartbeat_at__lt=now - model.stale_after())
        if store is not None:
            stale = stale.filter(store=store)
        n = stale.update(status=JobStatus.FAILED, finished_at=now, error=model.stale_error)
        if n:
            logger.warning("marked %d stale %s row(s) as failed", n, model.__name__)
        total += n
    return total


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
