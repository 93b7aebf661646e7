"""Celery tasks of the ads app. Thin: ids in, one service call."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from shop_recs.ads import periodic, services
from shop_recs.stores.models import Store


@shared_task(acks_late=True, time_limit=10 * 60, soft_time_limit=9 * 60)
def end_expired_campaigns_task(store_id: int | None = None) -> int:
    """Mark campaigns past their end date as ended (one store, or every store when ``store_id`` is None).

    Serving already ignores them (the dates are checked on every impression); this keeps the
    status column truthful for the list page. Beat does the same for every store in
    ``campaign_upkeep_task`` (entry ``campaign-upkeep``); this task is for one-off use.
    """
    stores = Store.objects.filter(pk=store_id) if store_id is not None else Store.objects.all()
    return sum(services.end_expired_campaigns(store) for store in stores)


@shared_task(acks_late=True, time_limit=10 * 60, soft_time_limit=9 * 60, ignore_result=True)
def campaign_upkeep_task() -> dict[str, Any]:
    """Periodic (beat entry ``campaign-upkeep``): end expired and spent campaigns, purge old counters."""
    return periodic.run_campaign_upkeep()
