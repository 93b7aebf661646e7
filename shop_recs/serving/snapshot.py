"""The catalog snapshot: everything serving knows about a store's products, in memory.

One :class:`CatalogSnapshot` per store and process (``catalog_snapshot``), rebuilt when its TTL
(``SERVING_CATALOG_TTL``) expires and the catalog fingerprint changed; ``Product``/``Category`` saves
drop this process's snapshot at once (signals below); other processes (and bulk upserts, which send
no signals) see changes within the TTL. Registered as the ``serving.snapshot`` process cache.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.db.models import Count, Max
from django.db.models.signals import post_delete, post_save
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from shop_recs.catalog.models import CATEGORY_PATH_SEPARATOR, Category, Product
from shop_recs.platform import metrics
from shop_recs.platform.cache import register_process_cache
from shop_recs.stores.models import Store
from shop_recs.stores.scoping import store_scope

__all__ = [
    "CARD_FIELDS",
    "DB_UNREACHABLE",
    "OUTAGE_RETRY_SECONDS",
    "CatalogSnapshot",
    "card_item",
    "catalog_snapshot",
    "invalidate_catalog",
]

#: The product fields every served item carries (recommendations, similar, FBT, popular, trending,
#: search), in this order: what a shop needs to draw a card without another lookup.
CARD_FIELDS = ("sku", "title", "price", "currency", "in_stock", "image_url", "url")

logger = logging.getLogger(__name__)

#: The errors that mean "the database cannot be reached" (server stopped or restarting, connection
#: lost), as opposed to a wrong query. Serving's per-process caches keep their last value on these.
DB_UNREACHABLE = (OperationalError, InterfaceError)
#: While the database is unreachable, a cache whose re-read failed tries again after this many
#: seconds, not on every request (each attempt costs a connect; a dead server is not hammered).
OUTAGE_RETRY_SECONDS = 2.0

_lock = threading.Lock()

#: Derived arrays kept per snapshot (rule masks per distinct rules value, category masks, subtrees):
#: the store's own rules plus a few preview/experiment overrides; past this the oldest is dropped.
DERIVED_PER_SNAPSHOT = 64


def remember_derived(cache: dict[Any, Any], key: Any, value: Any) -> None:
    while len(cache) >= DERIVED_PER_SNAPSHOT:
        cache.pop(next(iter(cache)), None)
    cache[key] = value


@dataclass
class CatalogSnapshot:
    """Everything serving needs to know about a store's products, in memory: no ORM on the hot path.

    Arrays are indexed by position ``i`` (``index[pk] -> i``). ``items[i]`` is the pre-built card part
    of an API item (:data:`CARD_FIELDS`: sku, title, price as a decimal string, currency, in_stock,
    image_url, url), built once per snapshot so a response adds only its score and reason.
    """

    store_id: int
    pks: np.ndarray
    index: dict[int, int]
    sku_to_pk: dict[str, int]
    skus: list[str]
    titles: list[str]
    prices: np.ndarray  # float64, NaN when unknown (filters compare it; the API answers with ``items``)
    active: np.ndarray
    in_stock: np.ndarray
    category: np.ndarray  # category pk, -1 for none
    category_paths: dict[int, str]
    created: np.ndarray  # epoch seconds
    image_urls: list[str]  # "" when none
    urls: list[str]  # "" when none
    currencies: list[str]  # the product's currency, else the store's
    items: list[dict[str, Any]]
    documents: list[str]
    built_at: float = 0.0
    #: ``_catalog_fingerprint`` when built: an expired snapshot whose catalog has not changed is kept
    #: (with every array and cache derived from it) instead of being rebuilt.
    fingerprint: tuple[Any, ...] = ()
    _content: Any = None
    #: Arrays derived from this snapshot on demand (rule masks, category masks, category subtrees).
    #: They depend only on the snapshot (and the rules value in their key), so they live as long as it.
    _derived: dict[Any, Any] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.pks)

    def pos(self, pk: int) -> int | None:
        return self.index.get(int(pk))

    def category_of(self, pk: int) -> int:
        i = self.index.get(int(pk))
        return int(self.category[i]) if i is not None else -1

    def title_of(self, pk: int | None) -> str:
        i = self.index.get(int(pk)) if pk is not None else None
        return self.titles[i] if i is not None else ""

    def sku_of(self, pk: int | None) -> str | None:
        i = self.index.get(int(pk)) if pk is not None else None
        return self.skus[i] if i is not None else None

    def categories_under(self, path: str) -> frozenset[int]:
        """Category pks at ``path`` or below it (the catalog API's subtree semantics)."""
        key = ("categories_under", path)
        hit = self._derived.get(key)
        if hit is None:
            path = CATEGORY_PATH_SEPARATOR.join(p.strip() for p in path.split(">"))
            prefix = path + CATEGORY_PATH_SEPARATOR
            hit = frozenset(pk for pk, p in self.category_paths.items() if p == path or p.startswith(prefix))
            remember_derived(self._derived, key, hit)
        return hit

    def content_index(self) -> Any:
        """L2-normalised TF-IDF rows of every product (built lazily, once per snapshot)."""
        if self._content is None:
            docs = self.documents if any(d.strip() for d in self.documents) else ["_"] * len(self.documents)
            if not docs:
                self._content = sp.csr_matrix((0, 1), dtype=np.float32)
            else:
                tfidf = TfidfVectorizer(sublinear_tf=True, dtype=np.float32).fit_transform(docs)
                self._content = normalize(tfidf, norm="l2", axis=1).tocsr()
        return self._content

    def content_similar(self, positions: Sequence[int], weights: Sequence[float] | None = None) -> np.ndarray:
        """Cosine of every product to the (weighted) profile of ``positions``; the inputs score -inf."""
        x = self.content_index()
        scores = np.zeros(len(self), dtype=np.float32)
        if not len(positions) or x.shape[0] == 0:
            return scores
        w = np.ones(len(positions), dtype=np.float32) if weights is None else np.asarray(weights, dtype=np.float32)
        profile = x[list(positions)].T @ w
        scores = np.asarray(x @ profile, dtype=np.float32).ravel()
        scores[list(positions)] = -np.inf
        return scores


_catalog_cache: dict[int, CatalogSnapshot] = {}


def _catalog_fingerprint(store_id: int) -> tuple[Any, ...]:
    """Changes when a product is added, updated (``updated_at``; bulk upserts set it too) or deleted,
    or a category is added or deleted. A category renamed in another process is seen on the next
    product change or restart (the search index has the same rule)."""
    with store_scope(store_id):
        products = Product.objects.order_by().aggregate(n=Count("id"), latest=Max("updated_at"), top=Max("id"))
        categories = Category.objects.order_by().aggregate(n=Count("id"), top=Max("id"))
    # The store's currency is every card's fallback currency: changing it must rebuild the cards.
    currency = Store.objects.filter(pk=store_id).values_list("currency", flat=True).first() or ""
    return (products["n"], products["latest"], products["top"], categories["n"], categories["top"], currency)


def card_item(sku: str, title: str, price: Any, currency: str, in_stock: bool, image_url: str, url: str) -> dict:
    """The card part of an API item: price as a decimal string ("12.50", None when unknown), empty URLs
    as None. One function, so every endpoint answers with the same shape."""
    return {
        "sku": sku,
        "title": title,
        # The column's Decimal has 2 places, so str() is already "12.50": exact, unlike a float.
        "price": None if price is None else str(price),
        "currency": currency,
        "in_stock": bool(in_stock),
        "image_url": image_url or None,
        "url": url or None,
    }


def _build_catalog(store_id: int, store_currency: str) -> CatalogSnapshot:
    with store_scope(store_id):
        rows = list(
            Product.objects.order_by("pk").values_list(
                "pk",
                "sku",
                "title",
                "price",
                "is_active",
                "in_stock",
                "category_id",
                "created_at",
                "brand",
                "description",
                "tags",
                "currency",
                "image_url",
                "url",
            )
        )
        paths = dict(Category.objects.values_list("pk", "path"))
    n = len(rows)
    pks = np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)
    prices = np.array([float(r[3]) if r[3] is not None else np.nan for r in rows], dtype=np.float64)
    currencies = [r[11] or store_currency for r in rows]
    items = [card_item(r[1], r[2], r[3], cur, r[5], r[12], r[13]) for r, cur in zip(rows, currencies, strict=True)]
    docs = []
    for r in rows:
        tags = " ".join(str(t) for t in r[10]) if isinstance(r[10], list) else ""
        cat = paths.get(r[6], "") if r[6] else ""
        # Title twice: on short catalog texts it is the strongest signal of what the product is.
        docs.append(" ".join(p for p in (r[2], r[2], cat, r[8], tags, (r[9] or "")[:500]) if p))
    return CatalogSnapshot(
        store_id=store_id,
        pks=pks,
        index={int(pk): i for i, pk in enumerate(pks.tolist())},
        sku_to_pk={r[1]: r[0] for r in rows},
        skus=[r[1] for r in rows],
        titles=[r[2] for r in rows],
        prices=prices,
        active=np.array([bool(r[4]) for r in rows], dtype=bool),
        in_stock=np.array([bool(r[5]) for r in rows], dtype=bool),
        category=np.array([r[6] if r[6] is not None else -1 for r in rows], dtype=np.int64),
        category_paths=paths,
        created=np.array([r[7].timestamp() for r in rows], dtype=np.float64),
        image_urls=[r[12] for r in rows],
        urls=[r[13] for r in rows],
        currencies=currencies,
        items=items,
        documents=docs,
        built_at=time.monotonic(),
    )


def catalog_snapshot(store: Store | int) -> CatalogSnapshot:
    """This process's snapshot of the store's catalog (TTL ``SERVING_CATALOG_TTL``, dropped on save).

    While the database is unreachable an expired snapshot is kept and served, and re-read after
    ``OUTAGE_RETRY_SECONDS``; only a store this process has no snapshot of raises the error.
    """
    store_id = int(getattr(store, "pk", store))
    hit = _catalog_cache.get(store_id)
    now = time.monotonic()
    ttl = float(settings.SERVING_CATALOG_TTL)
    if hit is not None and now - hit.built_at < ttl:
        metrics.cache_lookup("catalog_snapshot", True)
        return hit
    metrics.cache_lookup("catalog_snapshot", False)  # expired or absent: at least the fingerprint query
    try:
        fingerprint = _catalog_fingerprint(store_id)
        if hit is not None and hit.fingerprint == fingerprint:
            # Unchanged: keep the snapshot, so the serving state, its caches and the customers' memoised
            # candidates built on it stay valid (a rebuild costs a catalog read and every such cache).
            hit.built_at = now
            return hit
        snap = _build_catalog(store_id, fingerprint[-1])
    except DB_UNREACHABLE:
        if hit is None:
            raise
        # Keep serving the snapshot we have; look again in OUTAGE_RETRY_SECONDS (not on every request).
        hit.built_at = now - ttl + OUTAGE_RETRY_SECONDS
        logger.warning("database unreachable: serving store %s's catalog snapshot as it was", store_id)
        return hit
    snap.fingerprint = fingerprint
    with _lock:
        _catalog_cache[store_id] = snap
    return snap


def invalidate_catalog(store_id: int | None = None) -> None:
    with _lock:
        if store_id is None:
            _catalog_cache.clear()
        else:
            _catalog_cache.pop(int(store_id), None)


def _on_catalog_change(sender: Any, instance: Any, **kwargs: Any) -> None:
    invalidate_catalog(getattr(instance, "store_id", None))


def _connect_signals() -> None:
    for model in (Product, Category):
        post_save.connect(_on_catalog_change, sender=model, dispatch_uid=f"serving-catalog-save-{model.__name__}")
        post_delete.connect(_on_catalog_change, sender=model, dispatch_uid=f"serving-catalog-del-{model.__name__}")


_connect_signals()
register_process_cache("serving.snapshot", invalidate_catalog)
