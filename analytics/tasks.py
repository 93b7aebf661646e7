"""Celery tasks of the analytics app. Thin: a run id in, one service call, the outcome on the row."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from analytics import services


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    time_limit=60 * 60,
    soft_time_limit=55 * 60,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=5,
    max_retries=2,
)
def compute_profiles_task(run_id: int) -> str:
    return services.run_profiles(run_id).status
