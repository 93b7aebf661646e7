"""Celery tasks of search: thin, as everywhere (ids in, one service call)."""

from __future__ import annotations

from celery import shared_task

from shop_recs.search.services import get_store_index, invalidate_search_index
from shop_recs.stores.models import Store
from shop_recs.stores.scoping import store_scope


@shared_task(acks_late=True, soft_time_limit=300, time_limit=360)
def rebuild_search_index(store_id: int) -> int:
    """Drop and rebuild this worker's copy of the store's index (web processes follow by fingerprint).

    Returns the number of indexed products.
    """
    store = Store.objects.get(pk=store_id)
    invalidate_search_index(store_id)
    with store_scope(store):
        return get_store_index(store).index.n_docs
