"""Celery tasks of the evaluation app. Thin: ids in, one service call, the outcome is on the row.

A tuning job fans out: ``prepare_tuning_task`` builds the validation split and the trial rows, then
sends one ``run_tuning_trial`` per configuration as a ``chord`` whose callback,
``finalise_tuning_task``, writes the leaderboard (see ``tuning.dispatch_trials``).
"""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from analytics.evaluation import services, tuning

_RETRY = dict(autoretry_for=(OperationalError, InterfaceError), retry_backoff=5, max_retries=2)


@shared_task(acks_late=True, reject_on_worker_lost=True, time_limit=3600, soft_time_limit=3300, **_RETRY)
def run_evaluation_task(run_id: int) -> str:
    return services.run_evaluation(run_id).status


@shared_task(acks_late=True, time_limit=1800, soft_time_limit=1700, **_RETRY)
def prepare_tuning_task(job_id: int) -> str:
    trial_ids = tuning.prepare_tuning(job_id)
    return tuning.dispatch_trials(job_id, trial_ids)


@shared_task(acks_late=True, reject_on_worker_lost=True, time_limit=1800, soft_time_limit=1700, **_RETRY)
def run_tuning_trial(trial_id: int, finalise_when_last: bool = False) -> int:
    # Returns the id (a chord's header results must be serialisable); failures are on the trial row.
    tuning.run_trial(trial_id, finalise_when_last=finalise_when_last)
    return trial_id


@shared_task(acks_late=True, time_limit=300, soft_time_limit=240, **_RETRY)
def finalise_tuning_task(job_id: int) -> str:
    return tuning.finalise_tuning(job_id).status
