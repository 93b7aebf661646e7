"""Celery tasks of the dashboard. Thin: one service call; ``platform.periodic`` records each run."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from shop_recs.dashboard.overview_snapshots import refresh_overviews


@shared_task(acks_late=True, time_limit=1800, soft_time_limit=1700, ignore_result=True)
def refresh_overviews_task() -> dict[str, Any]:
    """Periodic: recompute the Overview snapshots of stores that have had events since."""
    return refresh_overviews()
