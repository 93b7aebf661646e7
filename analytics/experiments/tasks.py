"""Celery tasks of the experiments app: thin wrappers over ``services``."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from analytics.experiments.periodic import attribute_all_stores
from analytics.experiments.services import attribute_events
from shop_recs.stores.models import Store


@shared_task(acks_late=True, soft_time_limit=600, time_limit=660)
def attribute_events_task(store_id: int) -> int:
    """Attribute one store's new events (incremental by event id; safe to run again)."""
    store = Store.objects.filter(pk=store_id).first()
    return attribute_events(store) if store is not None else 0


@shared_task(acks_late=True, soft_time_limit=1800, time_limit=1900, ignore_result=True)
def attribute_all_stores_task() -> dict[str, Any]:
    """Periodic (beat entry ``attribute-events``): attribute every store's new events."""
    return attribute_all_stores()
