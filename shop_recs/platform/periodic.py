"""Periodic (beat) jobs: the record of every run, what each job did, and whether one is overdue.

Every task named in ``CELERY_BEAT_SCHEDULE`` gets a :class:`~shop_recs.platform.models.PeriodicRun`
row from the Celery signal receivers below (``task_prerun`` opens it, ``task_postrun`` closes it), so
no task has to remember to record itself and a task that raises is still recorded, as failed.

A periodic task returns its figures as a dict of integers (an ``int`` counts as ``{"count": n}``);
the optional ``"per_store"`` key maps a store id to that store's own figures. :data:`JOBS` says how
each job's figures read in a sentence, for the whole installation and for one store.

This module also holds the platform's own periodic bodies: the stale-job sweep over every concrete
:class:`~shop_recs.platform.jobs.JobRun` model (found through the app registry) and the pruning of
old run records, and the per-store settings the other apps' periodic jobs read.
"""

from __future__ import annotations

import logging
import numbers
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from celery.signals import task_failure, task_postrun, task_prerun
from django.conf import settings
from django.db.models import Max
from django.utils import timezone, translation
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from shop_recs.platform import jobs
from shop_recs.platform.models import PeriodicOutcome, PeriodicRun, StorePeriodicSettings

logger = logging.getLogger(__name__)

#: A job that has not started for this many of its intervals is flagged as not running on schedule.
OVERDUE_FACTOR = 2


@dataclass(frozen=True)
class PeriodicJob:
    """How a periodic task's figures read: a label, an installation-wide sentence, a per-store one."""

    label: str | Promise
    summary: str | Promise
    store_summary: str | Promise | None = None


#: Keyed by task name. ``%(key)s`` placeholders name keys of the task's returned figures.
JOBS: dict[str, PeriodicJob] = {
    "analytics.experiments.tasks.attribute_all_stores_task": PeriodicJob(
        _("Attribution of clicks and purchases"),
        _("attributed %(events)s events in %(stores)s stores"),
        _("%(events)s events attributed to served lists"),
    ),
    "shop_recs.ads.tasks.campaign_upkeep_task": PeriodicJob(
        _("Campaign expiry and pacing"),
        _(
            "%(expired)s campaigns ended past their end date, %(spent)s with their budget spent; "
            "%(purged)s old frequency counters deleted"
        ),
        _("%(expired)s campaigns ended past their end date, %(spent)s with their budget spent"),
    ),
    "shop_recs.platform.tasks.sweep_stale_jobs_task": PeriodicJob(
        _("Stale job sweep"),
        _("%(failed)s jobs of dead workers marked failed; %(pruned)s old run records deleted"),
        _("%(failed)s jobs whose worker stopped were marked failed"),
    ),
    "analytics.tasks.refresh_due_profiles_task": PeriodicJob(
        _("Profile and segment refresh"),
        _("profile refresh started in %(started)s stores"),
        _("profile refresh started (run #%(run)s)"),
    ),
    "shop_recs.dashboard.tasks.refresh_overviews_task": PeriodicJob(
        _("Overview refresh"),
        _("Overview recomputed for %(stores)s stores"),
        _("Overview recomputed for %(periods)s periods"),
    ),
    "analytics.tasks.purge_old_logs_task": PeriodicJob(
        _("Log retention purge"),
        _("%(lists)s served lists, %(searches)s search queries and %(attributions)s attributions deleted"),
        _("%(lists)s served lists, %(searches)s search queries and %(attributions)s attributions deleted"),
    ),
    "shop_recs.api.tasks.purge_idempotency_records": PeriodicJob(
        _("Idempotency key purge"),
        _("%(count)s expired idempotency records deleted"),
    ),
    "shop_recs.training.tasks.enqueue_due_trainings": PeriodicJob(
        _("Scheduled retraining"),
        _("%(started)s scheduled runs started, %(locked)s stores busy, %(no_new_events)s without new events"),
    ),
}


class _Figures(dict):
    """Format map for a job's sentence: a missing figure reads 0, numbers get thousands separators."""

    def __missing__(self, key: str) -> str:
        return "0"


def describe(template: str | Promise | None, figures: Mapping[str, Any] | None) -> str:
    """``template`` filled with ``figures`` (in the active language); "" without a template."""
    if template is None or figures is None:
        return ""
    values = _Figures(
        {k: f"{v:,}" if isinstance(v, numbers.Integral) and not isinstance(v, bool) else v for k, v in figures.items()}
    )
    try:
        return str(template) % values
    except (TypeError, ValueError):  # a figure of an unexpected type: show the raw figures instead
        return ", ".join(f"{k}={v}" for k, v in figures.items())


def beat_entries() -> dict[str, dict[str, Any]]:
    """``CELERY_BEAT_SCHEDULE`` keyed by entry name."""
    return dict(settings.CELERY_BEAT_SCHEDULE)


def _entry_for_task(task_name: str) -> str | None:
    for name, entry in beat_entries().items():
        if entry.get("task") == task_name:
            return name
    return None


def interval_seconds(entry: Mapping[str, Any]) -> float | None:
    """The entry's period in seconds, or ``None`` for a crontab-style schedule."""
    schedule = entry.get("schedule")
    if isinstance(schedule, timedelta):
        return schedule.total_seconds()
    if isinstance(schedule, numbers.Real):
        return float(schedule)
    return None


# --- recording every run (Celery signals) ---------------------------------------------------------

#: Open rows of the tasks this process is running: task id -> PeriodicRun pk.
_open: dict[str, int] = {}
#: The exception of a failed open run, from ``task_failure`` (``task_postrun`` does not always carry it).
_errors: dict[str, BaseException] = {}


def _split_result(retval: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(figures, per-store figures) of a task's return value."""
    if isinstance(retval, bool) or retval is None:
        return {}, {}
    if isinstance(retval, numbers.Integral):
        return {"count": int(retval)}, {}
    if isinstance(retval, Mapping):
        figures = {str(k): v for k, v in retval.items() if k != "per_store"}
        per_store = {str(k): dict(v) for k, v in (retval.get("per_store") or {}).items()}
        return jobs.json_safe(figures), jobs.json_safe(per_store)
    return {"result": str(retval)[:200]}, {}


def _on_task_prerun(sender: Any = None, task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    name = _entry_for_task(getattr(task, "name", ""))
    if name is None:
        return
    try:
        row = PeriodicRun.objects.create(name=name, task=task.name, task_id=task_id or "")
    except Exception:  # noqa: BLE001 - recording must never keep the job itself from running
        logger.exception("could not record the start of periodic job %s", name)
        return
    _open[task_id or ""] = row.pk


def _on_task_postrun(
    sender: Any = None,
    task_id: str | None = None,
    task: Any = None,
    retval: Any = None,
    state: str | None = None,
    **kwargs: Any,
) -> None:
    pk = _open.pop(task_id or "", None)
    error = _errors.pop(task_id or "", None)
    if pk is None:
        return
    if error is None and state != "SUCCESS":
        # Eager mode re-raises before ``task_failure``: the exception is the one propagating now.
        error = sys.exc_info()[1]
    try:
        finish_run(pk, retval if error is None else error, ok=state == "SUCCESS")
    except Exception:  # noqa: BLE001 - as above: the job's own outcome matters more than its record
        logger.exception("could not record the end of periodic run %s", pk)


def _on_task_failure(sender: Any = None, task_id: str | None = None, exception: Any = None, **kwargs: Any) -> None:
    if (task_id or "") in _open and isinstance(exception, BaseException):
        _errors[task_id or ""] = exception


def finish_run(pk: int, retval: Any, *, ok: bool) -> None:
    """Close the run row ``pk``: outcome, figures and their English summary, or the error."""
    row = PeriodicRun.objects.get(pk=pk)
    row.finished_at = timezone.now()
    if ok:
        row.counts, row.per_store = _split_result(retval)
        row.outcome = PeriodicOutcome.SUCCEEDED
        job = JOBS.get(row.task)
        with translation.override("en"):  # the stored summary is for operators and logs
            row.summary = (describe(job.summary, row.counts) if job else describe(None, None))[:500]
    else:
        row.outcome = PeriodicOutcome.FAILED
        row.error = (f"{type(retval).__name__}: {retval}" if isinstance(retval, BaseException) else str(retval))[:4000]
    row.save()
    log = logger.info if ok else logger.error
    log("periodic job %s %s: %s", row.name, row.outcome, row.summary or row.error)


def connect_signals() -> None:
    """Called from ``PlatformConfig.ready``; ``dispatch_uid`` keeps a second call harmless."""
    task_prerun.connect(_on_task_prerun, dispatch_uid="platform.periodic.prerun", weak=False)
    task_failure.connect(_on_task_failure, dispatch_uid="platform.periodic.failure", weak=False)
    task_postrun.connect(_on_task_postrun, dispatch_uid="platform.periodic.postrun", weak=False)


# --- what the Jobs page shows ---------------------------------------------------------------------


@dataclass
class PeriodicStatus:
    """One beat entry as a store's Jobs page shows it."""

    name: str
    label: str
    interval_seconds: float | None
    last: PeriodicRun | None
    store_summary: str
    overdue: bool
    #: Whether the job reports figures per store (the others only have installation-wide ones).
    per_store: bool = True

    @property
    def every(self) -> str:
        """The interval in words ("every 5 minutes"), in the active language."""
        seconds = self.interval_seconds
        if seconds is None:
            return ""
        if seconds >= 3600 and seconds % 3600 == 0:
            n = int(seconds // 3600)
            return ngettext("every hour", "every %(n)d hours", n) % {"n": n}
        if seconds >= 60 and seconds % 60 == 0:
            n = int(seconds // 60)
            return ngettext("every minute", "every %(n)d minutes", n) % {"n": n}
        n = int(seconds)
        return ngettext("every second", "every %(n)d seconds", n) % {"n": n}


def periodic_status(store_id: int, now: datetime | None = None) -> list[PeriodicStatus]:
    """Every beat entry with its latest run and what it did for ``store_id``.

    A job is overdue when it never started or its latest start is older than
    ``OVERDUE_FACTOR`` intervals. Only the store's own figures are described, never another store's.
    """
    now = now or timezone.now()
    out: list[PeriodicStatus] = []
    for name, entry in beat_entries().items():
        job = JOBS.get(entry.get("task", ""))
        interval = interval_seconds(entry)
        last = PeriodicRun.objects.filter(name=name).order_by("-started_at", "-pk").first()
        overdue = interval is not None and (
            last is None or last.started_at < now - timedelta(seconds=OVERDUE_FACTOR * interval)
        )
        store_figures = (last.per_store or {}).get(str(store_id)) if last is not None else None
        summary = ""
        if last is not None and last.outcome == PeriodicOutcome.SUCCEEDED and job is not None:
            summary = describe(job.store_summary, store_figures)
        out.append(
            PeriodicStatus(
                name=name,
                label=str(job.label) if job else name,
                interval_seconds=interval,
                last=last,
                store_summary=summary,
                overdue=overdue,
                per_store=job is not None and job.store_summary is not None,
            )
        )
    return out


# --- per-store settings the periodic jobs read ----------------------------------------------------


def store_settings(store_ids: list[int]) -> dict[int, StorePeriodicSettings]:
    """The stores' periodic settings rows that exist (a store without one uses the defaults)."""
    # all stores: the periodic jobs read the settings of exactly the stores they are about to handle.
    return {row.store_id: row for row in StorePeriodicSettings.all_stores.filter(store_id__in=store_ids)}


def profile_refresh_interval(row: StorePeriodicSettings | None) -> timedelta | None:
    """How often the store's profiles are refreshed; ``None`` = never (the store set 0)."""
    hours = (
        settings.PROFILE_REFRESH_HOURS
        if row is None or row.profile_refresh_hours is None
        else row.profile_refresh_hours
    )
    return timedelta(hours=hours) if hours > 0 else None


def attribution_enabled(row: StorePeriodicSettings | None) -> bool:
    return row is None or row.attribution


# --- the platform's own periodic bodies -----------------------------------------------------------


def sweep_stale_jobs(now: datetime | None = None) -> dict[str, Any]:
    """Fail running rows of every job model whose worker is gone, and prune old run records.

    Uses ``jobs.fail_stale_jobs`` per (model, store) so the figures say which store lost what.
    """
    now = now or timezone.now()
    by_kind: dict[str, int] = {}
    per_store: dict[int, dict[str, int]] = {}
    for model in jobs.swept_models():
        # all stores: the sweep looks for dead workers' rows in every store.
        store_ids = set(
            model.all_stores.filter(
                status=jobs.JobStatus.RUNNING, heartbeat_at__lt=now - model.stale_after()
            ).values_list("store_id", flat=True)
        )
        for store_id in sorted(store_ids):
            n = jobs.fail_stale_jobs(store=store_id, models=[model])
            if n:
                by_kind[model._meta.label] = by_kind.get(model._meta.label, 0) + n
                per_store.setdefault(store_id, {"failed": 0})["failed"] += n
    pruned = prune_periodic_runs(now)
    return {"failed": sum(by_kind.values()), "pruned": pruned, **by_kind, "per_store": per_store}


def prune_periodic_runs(now: datetime | None = None) -> int:
    """Delete run records older than ``PERIODIC_RUN_RETENTION_DAYS``, keeping each job's latest."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.PERIODIC_RUN_RETENTION_DAYS)
    latest = PeriodicRun.objects.values("name").annotate(last=Max("pk")).values_list("last", flat=True)
    deleted, _ = PeriodicRun.objects.filter(started_at__lt=cutoff).exclude(pk__in=list(latest)).delete()
    return deleted
