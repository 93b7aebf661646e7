"""Celery tasks of the experiments app: thin wrappers over ``services``."""

from __future__ import annotations

from celery import shared_task

from analytics.experiments.services import attribute_events
from shop_recs.stores.models import Store


@shared_task(acks_late=True, soft_time_limit=600, time_limit=660)
def attribute_events_task(store_id: int) -> int:
    """Attribute one store's new events (incremental by event id; safe to run again)."""
    store = Store.objects.filter(pk=store_id).first()
    return attribute_events(store) if store is not None else 0


@shared_task(acks_late=True, soft_time_limit=1800, time_limit=1900)
def attribute_all_stores_task() -> int:
    """Periodic: attribute every store's new events (schedule it with beat, e.g. every 5 minutes)."""
    return sum(attribute_events(store) for store in Store.objects.all())
