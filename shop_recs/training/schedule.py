"""Scheduled retraining: which stores are due, and starting their runs (the beat task's body).

``enqueue_due_trainings`` runs every few minutes (``CELERY_BEAT_SCHEDULE``). For every enabled
:class:`~shop_recs.recommend.models.TrainingSchedule` whose ``next_due_at`` has passed it:

1. fails runs of dead workers for the store (``start_training`` does this), so a crash never blocks
   the schedule for long;
2. **skips** the store if a run is already queued or running (the per-store lock; it stays due and
   is tried again on the next tick) and logs it;
3. **skips** the store if no event arrived since its last successful run (nothing would change) and
   moves ``next_due_at`` to the next slot;
4. otherwise starts a run with ``services.start_training`` (enqueued on commit) and moves
   ``next_due_at`` to the next slot.

"Incremental" means: the matrix is still rebuilt from the store's whole event history (matrix
building is cheap next to fitting, and decay/k-core filters need the full log), but every run records
``data_stats["event_high_water"]`` (the largest ``Event.pk`` when it started) and
``data_stats["new_events"]`` (the store's events above the previous successful run's mark), and the
schedule only retrains when that number would be positive.

Merchants edit the schedule on the dashboard's Jobs page, which saves through :func:`update_schedule`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from shop_recs.activity.models import Event
from shop_recs.platform.jobs import JobStatus
from shop_recs.stores.scoping import store_scope, unscoped
from shop_recs.training import services
from shop_recs.training.config import training_config
from shop_recs.training.errors import TrainingAlreadyRunning
from shop_recs.training.models import TrainingRun, TrainingSchedule

if TYPE_CHECKING:
    from shop_recs.stores.models import Store

logger = logging.getLogger(__name__)

#: How many due stores one beat tick handles at most (the rest are picked up on the next tick).
MAX_PER_TICK = 200


def next_due(schedule: TrainingSchedule, after: datetime) -> datetime:
    """The next slot strictly after ``after``: the next ``daily_hour`` (UTC) or ``after + interval``."""
    if schedule.daily_hour is not None:
        candidate = after.astimezone(UTC).replace(hour=int(schedule.daily_hour), minute=0, second=0, microsecond=0)
        if candidate <= after:
            candidate += timedelta(days=1)
        return candidate
    return after + timedelta(hours=max(1, int(schedule.interval_hours or 24)))


def first_due(schedule: TrainingSchedule, now: datetime) -> datetime:
    """A new daily schedule waits for its hour; a new interval schedule is due at once."""
    return next_due(schedule, now) if schedule.daily_hour is not None else now


def current_schedule(store: Store | int) -> TrainingSchedule | None:
    """The store's schedule row (with its last scheduled run), or ``None`` if it never had one."""
    with store_scope(store):
        return TrainingSchedule.objects.select_related("last_run").first()


def update_schedule(
    store: Store,
    *,
    enabled: bool,
    daily_hour: int | None,
    interval_hours: int | None,
    algorithms: Sequence[str] = (),
    now: datetime | None = None,
) -> TrainingSchedule:
    """Create or change ``store``'s schedule (the Jobs page's form) and return the saved row.

    The cadence is ``daily_hour`` or ``interval_hours``; the other one is cleared so the row says
    exactly what the beat task does. Passing neither keeps the stored cadence (only sensible for a
    disabled schedule; the form refuses it otherwise). Empty ``algorithms`` means the store's
    training configuration at the time of each run.

    ``next_due_at`` is recomputed with :func:`first_due` from ``now`` when the schedule is new, its
    cadence changed, or it is switched back on (a slot computed before it was switched off may lie
    far in the past). Changing only the algorithms keeps it, so saving the form does not postpone a
    run that is about to happen.
    """
    now = now or timezone.now()
    with store_scope(store), transaction.atomic():
        # Locked like the beat task's claim in ``_handle``, so a tick that is starting this store's
        # run right now cannot write a slot computed from the old cadence over the new one.
        row = TrainingSchedule.objects.select_for_update().filter(store=store).first()
        is_new = row is None
        if row is None:
            row = TrainingSchedule(store=store)
        was_enabled = row.enabled
        old_cadence = (row.daily_hour, row.interval_hours)
        if daily_hour is not None:
            row.daily_hour, row.interval_hours = daily_hour, None
        elif interval_hours is not None:
            row.daily_hour, row.interval_hours = None, interval_hours
        row.enabled = enabled
        row.algorithms = list(algorithms)
        row.clean()  # the model's own checks, for callers that bypass the form
        if is_new or (row.daily_hour, row.interval_hours) != old_cadence or (enabled and not was_enabled):
            row.next_due_at = first_due(row, now)
        row.save()
    logger.info(
        "store %s (%s): training schedule saved (%s, enabled=%s, next due %s)",
        store.pk,
        store.slug,
        row,
        row.enabled,
        row.next_due_at,
    )
    return row


def last_success(store: Store | int) -> TrainingRun | None:
    with store_scope(store):
        return TrainingRun.objects.filter(status=JobStatus.SUCCEEDED).order_by("-finished_at", "-pk").first()


def new_events_since_last_success(store: Store | int) -> int:
    """Events of the store above the last successful run's high-water mark (all events if it never
    trained successfully)."""
    run = last_success(store)
    mark = (run.data_stats or {}).get("event_high_water") if run is not None else None
    with store_scope(store):
        qs = Event.objects.all()
        if run is None:
            pass
        elif mark is not None:
            qs = qs.filter(pk__gt=int(mark))
        elif run.started_at is not None:  # runs from before the mark existed: fall back to arrival time
            qs = qs.filter(received_at__gt=run.started_at)
        return qs.count()


@dataclass
class TickResult:
    """What one beat tick did, per store id (``started``/``locked``/``no_new_events``/``error``)."""

    outcomes: dict[int, str]

    def count(self, outcome: str) -> int:
        return sum(1 for v in self.outcomes.values() if v == outcome)


def enqueue_due_trainings(now: datetime | None = None) -> TickResult:
    """Start a run for every due store (see the module doc). Safe to run concurrently: each schedule
    row is claimed with ``SELECT ... FOR UPDATE SKIP LOCKED``."""
    now = now or timezone.now()
    # all stores: the beat tick looks for every store's due schedule.
    with unscoped():
        due_ids = list(
            TrainingSchedule.objects.filter(enabled=True, next_due_at__lte=now)
            .order_by("next_due_at")
            .values_list("pk", flat=True)[:MAX_PER_TICK]
        )
    outcomes: dict[int, str] = {}
    for pk in due_ids:
        try:
            store_id, outcome = _handle(pk, now)
        except Exception:  # noqa: BLE001 - one broken store must not stop the others
            logger.exception("schedule %s: could not start a scheduled training run", pk)
            continue
        if store_id is not None:
            outcomes[store_id] = outcome
    if outcomes:
        logger.info("scheduled retraining tick: %s", outcomes)
    return TickResult(outcomes)


def _handle(schedule_id: int, now: datetime) -> tuple[int | None, str]:
    with transaction.atomic():
        qs = TrainingSchedule.all_stores.select_related("store").filter(
            pk=schedule_id, enabled=True, next_due_at__lte=now
        )
        schedule = qs.select_for_update(skip_locked=True, of=("self",)).first()
        if schedule is None:  # another beat/worker took it, or it was edited meanwhile
            return None, ""
        store = schedule.store
        new_events = new_events_since_last_success(store)
        if new_events == 0:
            schedule.next_due_at = next_due(schedule, now)
            schedule.last_outcome = f"{now:%Y-%m-%d %H:%M} skipped: no new events since the last successful run"
            schedule.save(update_fields=["next_due_at", "last_outcome", "updated_at"])
            logger.info(
                "store %s (%s): no new events since the last successful run; not retraining", store.pk, store.slug
            )
            return store.pk, "no_new_events"
        # The schedule's own choice wins; otherwise the configuration promoted from a tuning job.
        config_algorithms, config_params = training_config(store)
        algorithms = list(schedule.algorithms or config_algorithms)
        params = {**config_params, **(schedule.params or {})}
        try:
            run = services.start_training(store, algorithms, params)
        except TrainingAlreadyRunning as exc:
            # Stays due: the next tick tries again once the current run has finished.
            schedule.last_outcome = f"{now:%Y-%m-%d %H:%M} skipped: {exc}"
            schedule.save(update_fields=["last_outcome", "updated_at"])
            logger.info("store %s (%s): scheduled retraining skipped, %s", store.pk, store.slug, exc)
            return store.pk, "locked"
        schedule.last_run = run
        schedule.last_enqueued_at = now
        schedule.next_due_at = next_due(schedule, now)
        schedule.last_outcome = f"{now:%Y-%m-%d %H:%M} started run #{run.pk} ({new_events} new events)"
        schedule.save(update_fields=["last_run", "last_enqueued_at", "next_due_at", "last_outcome", "updated_at"])
        logger.info("store %s (%s): scheduled training run #%s started", store.pk, store.slug, run.pk)
        return store.pk, "started"
