"""Celery tasks of the training lifecycle. Thin: ids in, one service call, the outcome is on the row.

Crash safety: ``acks_late`` + ``reject_on_worker_lost`` mean a worker killed mid-run gets the task
redelivered; ``run_training`` then restarts the run (at most ``MAX_ATTEMPTS`` in total) or fails it.
A redelivery finding the run "running" takes it over at once when the worker recorded on the run
(host and pid of the pool child that claimed it) is visibly gone, and otherwise leaves a run with a
fresh heartbeat alone (two live workers never run the same run).
The active model is only changed at the very end of a successful run, so a crash never touches it.
On worker start-up, job rows left "running" by a dead worker (no heartbeat for longer than their
model's ``stale_after()``) are failed: training runs (which also releases the per-store training
lock), evaluation runs, tuning jobs and profile runs alike (``platform.jobs.fail_stale_jobs``).

``enqueue_due_trainings`` is the beat task of scheduled retraining (``schedule.py``); every tick it
also runs that sweep, so a killed worker releases its store's lock within
``TrainingRun.stale_after()`` plus one tick.
"""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings
from django.db import InterfaceError, OperationalError

from shop_recs.platform.jobs import fail_stale_jobs
from shop_recs.training import schedule, services

logger = logging.getLogger(__name__)

#: Hard limit kills the process; the soft limit raises SoftTimeLimitExceeded inside the run first,
#: so the run is marked failed with a clear message instead of vanishing.
TRAINING_TIME_LIMIT = settings.TRAINING_TIME_LIMIT
TRAINING_SOFT_TIME_LIMIT = settings.TRAINING_SOFT_TIME_LIMIT


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    time_limit=TRAINING_TIME_LIMIT,
    soft_time_limit=TRAINING_SOFT_TIME_LIMIT,
    # Only connection-level database errors are retried: training failures are recorded on the run
    # by the service and retrying them would just fail again.
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=5,
    max_retries=2,
)
def train_model(run_id: int) -> str:
    run = services.run_training(run_id)
    return run.status


@shared_task(acks_late=True, time_limit=300, soft_time_limit=240, ignore_result=True)
def enqueue_due_trainings() -> dict[str, int]:
    try:
        fail_stale_jobs()
    except Exception:  # noqa: BLE001 - housekeeping must not stop the schedule
        logger.exception("could not check for stale job rows")
    result = schedule.enqueue_due_trainings()
    return {k: result.count(k) for k in ("started", "locked", "no_new_events")}


@worker_ready.connect
def _fail_jobs_of_dead_workers(**kwargs) -> None:
    try:
        fail_stale_jobs()
    except Exception:  # noqa: BLE001 - never keep a worker from starting over housekeeping
        logger.exception("could not check for stale job rows")
