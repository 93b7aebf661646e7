"""Celery tasks of the ads app. Thin: ids in, one service call."""

from __future__ import annotations

from celery import shared_task

from shop_recs.ads import services
from shop_recs.stores.models import Store


@shared_task(acks_late=True, time_limit=10 * 60, soft_time_limit=9 * 60)
def end_expired_campaigns_task(store_id: int | None = None) -> int:
    """Mark campaigns past their end date as ended (one store, or every store when ``store_id`` is None).

    Serving already ignores them (the dates are checked on every impression); this keeps the
    status column truthful for the list page. Schedule it with celery beat, e.g. hourly.
    """
    stores = Store.objects.filter(pk=store_id) if store_id is not None else Store.objects.all()
    return sum(services.end_expired_campaigns(store) for store in stores)
