"""Celery tasks of the analytics app. Thin: a run id in, one service call, the outcome on the row."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.db import InterfaceError, OperationalError

from analytics import periodic, retention, services


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


@shared_task(acks_late=True, time_limit=600, soft_time_limit=540, ignore_result=True)
def refresh_due_profiles_task() -> dict[str, Any]:
    """Periodic (beat entry ``refresh-due-profiles``): start the profile runs that are due."""
    return periodic.refresh_due_profiles()


@shared_task(acks_late=True, time_limit=60 * 60, soft_time_limit=55 * 60, ignore_result=True)
def purge_old_logs_task() -> dict[str, Any]:
    """Periodic (beat entry ``purge-old-logs``): delete list, search and attribution rows past retention."""
    return retention.purge_old_logs()
