"""Product search for one store: the cached index, personal re-ranking, store rules and the query log.

``search_products`` is the one entry point (the API view and the dashboard's try-it box call it).
It must run inside the store's scope (the API mixin and ``store_view`` provide it).

The per-process index cache
    ``get_store_index`` keeps one :class:`StoreIndex` per store, keyed by a catalog fingerprint
    (product count + latest ``updated_at`` + category count). Computing the fingerprint is one
    aggregate query, so it is checked at most every ``SEARCH_INDEX_CHECK_SECONDS`` (default 5 s)
    per process; ``post_save``/``post_delete`` of a product or category in this process drops the
    entry at once, and the bulk upsert path (which bypasses signals) is caught by the fingerprint,
    because it sets ``updated_at``. A renamed category in another process is picked up when the
    next product changes or by ``invalidate_search_index`` (the ``rebuild_search_index`` task).

Database round trips per search
    None for an anonymous query in the common case: the index, the store rules and the catalog
    snapshot are per-process caches with the freshness rules above, and both log rows (the query
    log and the served-list log) go through ``shop_recs.platform.logbuffer`` (written at once when
    ``SERVING_LOG_BUFFER_ROWS`` is 0, else buffered and written by the flusher thread). A query that
    names a ``customer`` reads the customer's pk (one round trip) and, when the active model knows
    them and there is something to re-rank, their latest events (a second). The active model comes
    from the serving layer's state (``serving.serving_state``), which trusts the active version id
    for ``SERVING_ACTIVE_VERSION_TTL`` seconds like every other serving endpoint.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
import scipy.sparse as sp
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection
from django.db.models import Count, Max
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from shop_recs.activity import sql as activity_sql
from shop_recs.catalog.models import CATEGORY_PATH_SEPARATOR, Category, Product
from shop_recs.platform.cache import register_process_cache
from shop_recs.platform.logbuffer import LogTable
from shop_recs.search import sql as search_sql
from shop_recs.search.index import SearchIndex, tokenize, tokenize_with_surface
from shop_recs.serving.responses import LIST_LOG
from shop_recs.serving.rules import Candidate, RuleContext, apply_rules
from shop_recs.serving.runtime import serving_state
from shop_recs.serving.snapshot import card_item, catalog_snapshot, invalidate_catalog
from shop_recs.stores.models import Store
from shop_recs.training.matrix import DEFAULT_EVENT_WEIGHTS

logger = logging.getLogger(__name__)

#: Longest accepted query (characters); longer input is a 400 at the API.
MAX_QUERY_LENGTH = 200
#: Most results one request may ask for.
MAX_RESULTS = 100
#: How many text candidates are re-ranked personally and passed through the store rules.
CANDIDATES = 200
#: Customer events read to build the history row the model scores from.
HISTORY_EVENTS = 200


def personal_weight_default() -> float:
    return settings.SEARCH_PERSONAL_WEIGHT


def _check_seconds() -> float:
    return settings.SEARCH_INDEX_CHECK_SECONDS


# --- the per-store index -------------------------------------------------------------------------


@dataclass
class StoreIndex:
    """A store's text index plus the per-document fields search answers with (no DB read per query)."""

    index: SearchIndex
    fingerprint: tuple[Any, ...]
    product_ids: np.ndarray
    skus: list[str]
    titles: list[str]
    prices: np.ndarray  # float64, NaN where the product has no price
    category_paths: list[str]  # per document ("" without a category)
    #: The price each hit answers with (2 decimals; ``None`` without a price), made once per build
    #: rather than ``Decimal(str(...)).quantize`` per hit and request.
    price_decimals: list[Decimal | None] = field(default_factory=list)
    built_at: float = field(default_factory=time.monotonic)
    checked_at: float = field(default_factory=time.monotonic)

    def filter_mask(
        self, category: str | None = None, min_price: float | None = None, max_price: float | None = None
    ) -> np.ndarray | None:
        """Documents passing the filters (``None`` when there is no filter). The category includes its subtree."""
        if not category and min_price is None and max_price is None:
            return None
        mask = np.ones(len(self.product_ids), dtype=bool)
        if category:
            path = CATEGORY_PATH_SEPARATOR.join(p.strip() for p in category.split(">"))
            sub = path + CATEGORY_PATH_SEPARATOR
            mask &= np.fromiter((p == path or p.startswith(sub) for p in self.category_paths), bool, len(mask))
        with np.errstate(invalid="ignore"):
            if min_price is not None:
                mask &= self.prices >= min_price
            if max_price is not None:
                mask &= self.prices <= max_price
        return mask


_cache: dict[int, StoreIndex] = {}
_cache_lock = threading.Lock()
_build_locks: dict[int, threading.Lock] = {}


def catalog_fingerprint(store: Store) -> tuple[Any, ...]:
    """Changes whenever a product is added, updated or (de)activated, or a category added/removed."""
    # Scoped managers: called inside the store's scope (API view, store_view, the rebuild task).
    products = Product.objects.filter(store=store).aggregate(n=Count("id"), latest=Max("updated_at"))
    categories = Category.objects.filter(store=store).aggregate(n=Count("id"), top=Max("id"))
    latest = products["latest"].isoformat() if products["latest"] else ""
    return (products["n"], latest, categories["n"], categories["top"])


def build_store_index(store: Store, fingerprint: tuple[Any, ...] | None = None) -> StoreIndex:
    """Read the store's active products and index them (inactive ones are never searchable)."""
    fingerprint = fingerprint if fingerprint is not None else catalog_fingerprint(store)
    rows = list(
        Product.objects.filter(store=store, is_active=True)
        .order_by("pk")
        .values_list("pk", "sku", "title", "description", "brand", "price", "category__path")
    )
    docs = [
        {"title": title, "description": desc, "brand": brand, "category": path or ""}
        for _, _, title, desc, brand, _, path in rows
    ]
    index = SearchIndex(**settings.SEARCH_INDEX_PARAMS).build([r[0] for r in rows], docs)
    return StoreIndex(
        index=index,
        fingerprint=fingerprint,
        product_ids=np.asarray([r[0] for r in rows], dtype=np.int64),
        skus=[r[1] for r in rows],
        titles=[r[2] for r in rows],
        prices=np.asarray([float(r[5]) if r[5] is not None else np.nan for r in rows], dtype=np.float64),
        category_paths=[r[6] or "" for r in rows],
        price_decimals=[_price_decimal(r[5]) for r in rows],
    )


def _price_decimal(price: Any) -> Decimal | None:
    """The API's price of a product: its price as the float64 the index keeps, to 2 decimals."""
    if price is None:
        return None
    value = np.float64(float(price))
    return None if np.isnan(value) else Decimal(str(value)).quantize(Decimal("0.01"))


def get_store_index(store: Store) -> StoreIndex:
    """The store's index, rebuilt when the catalog fingerprint changed (checked every few seconds)."""
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(store.pk)
        lock = _build_locks.setdefault(store.pk, threading.Lock())
    if hit is not None and now - hit.checked_at < _check_seconds():
        return hit
    try:
        fingerprint = catalog_fingerprint(store)
    except (OperationalError, InterfaceError):
        # The database is unreachable: keep searching the index this process holds (docs/serving.md,
        # "When PostgreSQL is down") and check again after the usual interval.
        if hit is None:
            raise
        hit.checked_at = now
        return hit
    if hit is not None and hit.fingerprint == fingerprint:
        hit.checked_at = now
        return hit
    # One build per store at a time; concurrent requests wait for it instead of building again.
    with lock:
        with _cache_lock:
            hit = _cache.get(store.pk)
        if hit is not None and hit.fingerprint == fingerprint:
            return hit
        started = time.perf_counter()
        built = build_store_index(store, fingerprint)
        logger.info(
            "store %s: search index built (%d products, %d terms) in %.0f ms",
            store.pk,
            built.index.n_docs,
            len(built.index.vocab_),
            (time.perf_counter() - started) * 1000,
        )
        with _cache_lock:
            _cache[store.pk] = built
        # The catalog changed (possibly by a bulk upsert, which sends no signals): the rules'
        # catalog snapshot must see the same products, or it would drop the new ones.
        invalidate_catalog(store.pk)
        return built


def invalidate_search_index(store_id: int | None = None) -> None:
    """Drop one store's cached index (or all of them); the next search rebuilds it."""
    with _cache_lock:
        if store_id is None:
            _cache.clear()
        else:
            _cache.pop(int(store_id), None)


register_process_cache("search.index", invalidate_search_index)


def _on_catalog_change(sender, instance, **kwargs) -> None:
    invalidate_search_index(instance.store_id)


def connect_signals() -> None:

    for model in (Product, Category):
        post_save.connect(_on_catalog_change, sender=model, dispatch_uid=f"search-invalidate-{model.__name__}")
        post_delete.connect(_on_catalog_change, sender=model, dispatch_uid=f"search-invalidate-del-{model.__name__}")


# --- personal re-ranking -------------------------------------------------------------------------


def customer_pk_of(store: Store, external_id: str) -> int | None:
    """The store's customer with this external id (``None`` if unknown): the pk only."""
    return activity_sql.customer_pk(store.pk, external_id)


def recent_history(store: Store, customer_pk: int) -> list[tuple[int, str]]:
    """The customer's latest ``HISTORY_EVENTS`` product events, newest first: ``(product pk, type)``."""
    return activity_sql.latest_product_events(store.pk, customer_pk, HISTORY_EVENTS)


def personal_scores(store: Store, customer_pk: int, product_ids: np.ndarray) -> tuple[np.ndarray, Any] | None:
    """The active model's raw score of each product for the customer (NaN for products it does not
    know), with the ``ModelVersion`` that scored them. The customer's history is their
    :func:`recent_history` (read only when the model knows the customer).

    ``None`` when there is no model or the customer is not one of its rows (new customers get the
    pure text order; the next training run includes them).

    The model is the serving layer's (``serving_state``): no query while the active version id is
    trusted (``SERVING_ACTIVE_VERSION_TTL``), and an activation in this process is seen at once.
    """

    try:
        loaded = serving_state(store).loaded
    except Exception:  # a broken artifact must not take search down with it
        logger.exception("store %s: no usable model for personal search ranking", store.pk)
        return None
    if loaded is None:
        return None
    row = loaded.row_of(customer_pk)
    if row is None:
        return None
    n_items = len(loaded.item_ids)
    item_index = loaded.item_index
    cells: dict[int, float] = {}
    for product_id, event_type in recent_history(store, customer_pk):
        col = item_index.get(product_id)
        weight = DEFAULT_EVENT_WEIGHTS.get(event_type, 0.0)
        if col is not None and weight > 0:
            cells[col] = min(cells.get(col, 0.0) + weight, 20.0)
    cols = np.fromiter(cells.keys(), dtype=np.int64, count=len(cells))
    vals = np.fromiter(cells.values(), dtype=np.float32, count=len(cells))
    user_items = sp.csr_matrix((vals, (np.zeros_like(cols), cols)), shape=(1, n_items), dtype=np.float32)
    try:
        scores = np.asarray(loaded.model.score_users(np.asarray([row], dtype=np.int64), user_items))[0]
    except Exception:
        logger.exception("store %s: scoring customer %s for search failed", store.pk, customer_pk)
        return None
    columns = np.fromiter((item_index.get(pid, -1) for pid in product_ids.tolist()), np.int64, len(product_ids))
    known = columns >= 0
    out = np.full(len(product_ids), np.nan, dtype=np.float64)
    picked = np.asarray(scores[columns[known]], dtype=np.float64)
    out[known] = np.where(np.isfinite(picked), picked, np.nan)
    return out, loaded.version


def minmax(values: np.ndarray) -> np.ndarray:
    """Scale the finite values to 0..1 (NaN -> 0; all-equal -> 1 where finite)."""
    finite = np.isfinite(values)
    out = np.zeros(len(values), dtype=np.float64)
    if not finite.any():
        return out
    lo, hi = values[finite].min(), values[finite].max()
    out[finite] = (values[finite] - lo) / (hi - lo) if hi > lo else 1.0
    return out


# --- store rules (integration point) -------------------------------------------------------------


def apply_store_rules(
    store: Store, product_ids: Sequence[int], scores: Sequence[float], customer_id: int | None
) -> tuple[list[int], list[float], bool]:
    """Pass the ranked candidates through the store's rules (blocked, inactive, out of stock, boosts, pins).

    Returns the new ``(product_ids, scores, applied)``; ``applied`` is False only when the rules
    module is unavailable, leaving the index's own filter (active products only).

    Search deliberately differs from recommendations in three ways: already-purchased products stay
    findable (someone searching for the mug they bought wants to buy it again), pinned products move
    to the top only when they match the query (``insert_pinned=False``), and there is no diversity
    re-ranking (relevance order is the point of a search page).
    """
    candidates = [
        Candidate(product_id=int(pid), score=float(score), reason_code="search", reason_text="")
        for pid, score in zip(product_ids, scores, strict=True)
    ]
    context = RuleContext(purchased=(), insert_pinned=False, diversity=0.0, placement="search")
    kept = apply_rules(store, candidates, customer_id=customer_id, context=context)
    return [c.product_id for c in kept], [float(c.score) for c in kept], True


# --- search ----------------------------------------------------------------------------------------


@dataclass
class SearchHit:
    product_id: int
    sku: str
    title: str
    price: Decimal | None
    score: float
    text_score: float
    personal_score: float | None
    #: The API item's product part (``serving.snapshot.card_item``): the same shape as a recommendation's.
    card: dict[str, Any] = field(default_factory=dict)


@dataclass
class SearchOutcome:
    """One answered query: the page of hits plus what the engine made of the query."""

    query: str
    hits: list[SearchHit]
    total: int
    corrected_query: str | None = None
    did_you_mean: str | None = None
    personalized: bool = False
    rules_applied: bool = False
    list_id: str | None = None


def normalize_query(query: str) -> str:
    return " ".join(tokenize(query))[:MAX_QUERY_LENGTH]


def search_products(
    store: Store,
    query: str,
    *,
    n: int = 20,
    offset: int = 0,
    customer_external_id: str | None = None,
    category: str | None = None,
    min_price: float | None = None,
    max_price: float | None = None,
    session_id: str = "",
    personal_weight: float | None = None,
    log: bool = True,
) -> SearchOutcome:
    """Rank the store's products for ``query``: text relevance, personal re-rank, store rules, log.

    The final score of a candidate is ``(1 - w) * text + w * personal`` with both parts min-max
    normalised over the top ``CANDIDATES`` text matches, so ``w`` (``SEARCH_PERSONAL_WEIGHT``) means
    the same for every query. An unknown customer (or no active model) gets ``w = 0``.
    """
    # Search-as-you-type: the last word is also a prefix unless the user already typed a space.
    prefix_last = not query.endswith((" ", "\u3000"))
    query = query.strip()
    w = personal_weight_default() if personal_weight is None else float(personal_weight)
    store_index = get_store_index(store)
    mask = store_index.filter_mask(category, min_price, max_price)
    result = store_index.index.search(query, limit=CANDIDATES, mask=mask, prefix_last=prefix_last)
    doc_idx = result.doc_indices
    n_found = len(doc_idx)
    product_ids = store_index.product_ids[doc_idx]
    text = result.scores / result.scores.max() if n_found else np.zeros(0)

    customer_pk: int | None = None
    personal: np.ndarray | None = None
    version = None
    if customer_external_id:
        customer_pk = customer_pk_of(store, customer_external_id)
        if customer_pk is not None and n_found and w > 0:
            scored = personal_scores(store, customer_pk, product_ids)
            if scored is not None and np.isfinite(scored[0]).any():
                personal, version = minmax(scored[0]), scored[1]
    final = text if personal is None else (1.0 - w) * text + w * personal
    order = np.lexsort((product_ids, -final)) if n_found else np.zeros(0, dtype=np.int64)

    ranked_ids, ranked_scores, rules_applied = apply_store_rules(
        store, product_ids[order].tolist(), final[order].tolist(), customer_pk
    )

    hits = _page_hits(
        store,
        store_index,
        doc_idx,
        product_ids,
        text,
        personal,
        ranked_ids[offset : offset + n],
        ranked_scores[offset : offset + n],
    )
    total = len(ranked_ids) if rules_applied else result.total
    did_you_mean = _did_you_mean(store_index.index, query, result.total) if result.corrected_query is None else None
    outcome = SearchOutcome(
        query=query,
        hits=hits,
        total=total,
        corrected_query=result.corrected_query,
        did_you_mean=did_you_mean,
        personalized=personal is not None,
        rules_applied=rules_applied,
    )
    if log:
        log_query(store, query, outcome, customer_id=customer_pk, session_id=session_id)
        outcome.list_id = log_search_list(store, outcome, customer_id=customer_pk, version=version)
    return outcome


def _page_hits(
    store: Store,
    store_index: StoreIndex,
    doc_idx: np.ndarray,
    product_ids: np.ndarray,
    text: np.ndarray,
    personal: np.ndarray | None,
    page_ids: list[int],
    page_scores: list[float],
) -> list[SearchHit]:
    """The requested page as hits. A product a rule injected (one the text search did not find) is
    not a search result and is skipped.

    Each hit's card comes from the serving catalog snapshot (the rules above have just read it, so it
    is this process's cached copy: no query). A product the snapshot does not know yet (its TTL has
    not run out since the product was added) gets a card from the index's own fields.
    """
    snap = catalog_snapshot(store)
    position_of = dict(zip(product_ids.tolist(), range(len(product_ids)), strict=True))
    hits: list[SearchHit] = []
    for pid, score in zip(page_ids, page_scores, strict=True):
        i = position_of.get(pid)
        if i is None:
            continue
        doc = int(doc_idx[i])
        at = snap.index.get(pid)
        price = store_index.price_decimals[doc]
        card = (
            dict(snap.items[at])
            if at is not None
            else card_item(store_index.skus[doc], store_index.titles[doc], price, store.currency, True, "", "")
        )
        hits.append(
            SearchHit(
                product_id=pid,
                sku=store_index.skus[doc],
                title=store_index.titles[doc],
                price=store_index.price_decimals[doc],
                score=round(score, 6),
                text_score=round(float(text[i]), 6),
                personal_score=None if personal is None else round(float(personal[i]), 6),
                card=card,
            )
        )
    return hits


def _did_you_mean(index: SearchIndex, query: str, n_found: int) -> str | None:
    """A suggestion for a query whose words all exist but are rare: a far more common close word.

    Auto-correction (``corrected_query``) only rewrites words missing from the vocabulary; a real but
    rare word ("cases" in a phone shop that sells "case" once) is kept and only suggested away from.
    """
    if n_found >= 3:
        return None
    words, changed = [], False
    for term, surface in tokenize_with_surface(query):
        t_id = index.term_id(term)
        suggestion = None
        if t_id is not None and not term.isdigit():
            hit = index.closest_term(term, exclude=t_id)
            if hit is not None and index.df_[hit[0]] >= 5 * max(int(index.df_[t_id]), 1):
                suggestion = str(index.surface_[hit[0]])
        words.append(suggestion or surface)
        changed |= suggestion is not None
    return " ".join(words) if changed else None


def log_search_list(store: Store, outcome: SearchOutcome, *, customer_id: int | None, version: Any) -> str:
    """Record the served page in the serving layer's list log so clicks and purchases that carry
    ``context.list_id`` are attributed to search. The id is made here, so the row may be written
    later (``serving.LIST_LOG``: at once or buffered, see ``shop_recs.platform.logbuffer``)."""

    list_id = uuid.uuid4()
    LIST_LOG.write(
        [
            store.pk,
            list_id.hex if connection.vendor == "sqlite" else list_id,
            "search",
            "search",
            customer_id,
            getattr(version, "pk", None),
            getattr(version, "algorithm", "") if version is not None else "bm25",
            "",
            None,
            json.dumps([h.product_id for h in outcome.hits]),
            connection.ops.adapt_datetimefield_value(timezone.now()),
        ]
    )
    return str(list_id)


#: The search query log (``SearchQuery`` rows): written at once or buffered, per ``SERVING_LOG_BUFFER_ROWS``.
QUERY_LOG = LogTable("search query", search_sql.insert_query_sql)


def log_query(
    store: Store, query: str, outcome: SearchOutcome, *, customer_id: int | None = None, session_id: str = ""
) -> None:
    """Record one query for the insights page (which only aggregates these rows: nothing needs the
    row's id back, so the write can be buffered). ``created_at`` is the request's time, not the
    flush's."""
    QUERY_LOG.write(
        [
            store.pk,
            query[:MAX_QUERY_LENGTH],
            normalize_query(query),
            customer_id,
            (session_id or "")[:100],
            outcome.total,
            (outcome.corrected_query or "")[:MAX_QUERY_LENGTH],
            connection.ops.adapt_datetimefield_value(timezone.now()),
        ]
    )
