"""Celery tasks of the platform. Thin: one service call; ``platform.periodic`` records each run."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from shop_recs.platform.periodic import sweep_stale_jobs


@shared_task(acks_late=True, time_limit=300, soft_time_limit=240, ignore_result=True)
def sweep_stale_jobs_task() -> dict[str, Any]:
    """Periodic: fail job rows of every kind whose worker died, prune old periodic run records."""
    return sweep_stale_jobs()
