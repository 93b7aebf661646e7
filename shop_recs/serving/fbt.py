"""Frequently bought together: co-purchases ranked by lift, precomputed per store and served from memory.

A basket is one ``order_id``; purchases without an order id are grouped by customer and UTC day.
For products ``a`` and ``b`` over ``N`` baskets, ``support(a, b)`` is the number of baskets holding
both and ``lift = support(a, b) * N / (count(a) * count(b))``. Pairs below ``min_support`` baskets
are dropped (lift on one shared basket is noise); the rest are ranked by lift, then support.

``build_fbt(store)`` is Celery-friendly (ids in, plain data out) and should run after training; the
table is kept in this process and in Django's cache (Redis in production) so every web worker can
serve it without recomputing.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from itertools import combinations
from typing import TYPE_CHECKING

from django.conf import settings

from shop_recs.activity.models import Event
from shop_recs.platform.cache import cache_get, cache_set, register_process_cache
from shop_recs.stores.scoping import store_scope

if TYPE_CHECKING:
    from shop_recs.stores.models import Store

logger = logging.getLogger(__name__)

#: Minimum number of shared baskets for a pair (setting ``FBT_MIN_SUPPORT``).
DEFAULT_MIN_SUPPORT = 2
#: Neighbours kept per product.
MAX_PER_PRODUCT = 50
#: Baskets larger than this are wholesale orders; their pairs say little and cost quadratically.
MAX_BASKET = 50

#: product pk -> [(other pk, lift, support), ...] best first
FbtTable = dict[int, list[tuple[int, float, int]]]

_tables: dict[int, FbtTable] = {}
_lock = threading.Lock()


def _cache_key(store_id: int) -> str:
    return f"serving:fbt:{store_id}"


def compute_fbt(baskets: list[set[int]], min_support: int = DEFAULT_MIN_SUPPORT) -> FbtTable:
    """The lift-ranked table from baskets of product pks (pure function; the unit tests use it)."""
    baskets = [b for b in baskets if b]
    n = len(baskets)
    counts: dict[int, int] = defaultdict(int)
    pairs: dict[tuple[int, int], int] = defaultdict(int)
    for basket in baskets:
        for pk in basket:
            counts[pk] += 1
        if 1 < len(basket) <= MAX_BASKET:
            for a, b in combinations(sorted(basket), 2):
                pairs[(a, b)] += 1
    table: dict[int, list[tuple[int, float, int]]] = defaultdict(list)
    for (a, b), support in pairs.items():
        if support < min_support:
            continue
        lift = support * n / (counts[a] * counts[b])
        table[a].append((b, lift, support))
        table[b].append((a, lift, support))
    return {pk: sorted(rows, key=lambda r: (-r[1], -r[2], r[0]))[:MAX_PER_PRODUCT] for pk, rows in table.items()}


def store_baskets(store: Store | int) -> list[set[int]]:
    store_id = int(getattr(store, "pk", store))
    baskets: dict[tuple, set[int]] = defaultdict(set)
    with store_scope(store_id):
        rows = (
            Event.objects.filter(event_type="purchase", product__isnull=False)
            .order_by()
            .values_list("product_id", "order_id", "customer_id", "session_id", "timestamp")
        )
        for product_id, order_id, customer_id, session_id, ts in rows.iterator(chunk_size=5000):
            key = ("o", order_id) if order_id else ("c", customer_id or session_id, ts.date())
            baskets[key].add(int(product_id))
    return list(baskets.values())


def build_fbt(store: Store | int, min_support: int | None = None) -> FbtTable:
    """Compute the store's table and publish it (process memory and Django's cache)."""
    store_id = int(getattr(store, "pk", store))
    if min_support is None:
        min_support = int(settings.FBT_MIN_SUPPORT)
    table = compute_fbt(store_baskets(store_id), min_support=min_support)
    with _lock:
        _tables[store_id] = table
    # A cache outage must not fail the build (cache_set logs it); this process's memory still serves.
    cache_set(_cache_key(store_id), {str(k): v for k, v in table.items()}, timeout=None)
    logger.info("store %s: FBT table for %d products", store_id, len(table))
    return table


def fbt_table(store: Store | int) -> FbtTable:
    """The store's table: this process's copy, else the shared cache, else built now (and logged)."""
    store_id = int(getattr(store, "pk", store))
    table = _tables.get(store_id)
    if table is not None:
        return table
    cached = cache_get(_cache_key(store_id))
    if cached is not None:
        table = {int(k): [tuple(r) for r in v] for k, v in cached.items()}
        with _lock:
            _tables[store_id] = table
        return table
    logger.warning("store %s: no precomputed FBT table; building it in the request", store_id)
    return build_fbt(store_id)


def clear_fbt(store_id: int | None = None) -> None:
    with _lock:
        if store_id is None:
            _tables.clear()
        else:
            _tables.pop(int(store_id), None)


register_process_cache("serving.fbt", clear_fbt)
