"""The serving hot path: candidates from the active model + live events, store rules, reasons, list log.

Everything per request is numpy over in-memory state; the database is touched for the customer
(1 query), their latest events and purchases (1 query, :func:`realtime.recent_activity`) and the
list-log INSERT (1 query). Per store and model version we keep a :class:`ServingState`: the loaded
model (``load_active_model`` caches it), the model-column -> catalog-position map and popularity /
trending arrays over catalog positions. BLAS runs single-threaded here (one user's scoring is
faster with 1 thread and web workers run in parallel anyway).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
from django.conf import settings
from django.db import connection
from django.db.models import Case, Count, F, FloatField, Max, Sum, Value, When
from django.utils import timezone
from django.utils.translation import gettext as _
from threadpoolctl import ThreadpoolController

from shop_recs.recommend import realtime
from shop_recs.recommend.matrix import DEFAULT_EVENT_WEIGHTS
from shop_recs.recommend.rules import Candidate, CatalogSnapshot, RuleContext, apply_rules, catalog_snapshot
from shop_recs.recommend.services import LoadedModel, load_active_model
from shop_recs.stores.scoping import store_scope

if TYPE_CHECKING:
    from shop_recs.stores.models import Store

#: Weight of the neighbours of the latest events, relative to the (0..1 scaled) model scores.
REALTIME_WEIGHT = 0.6
#: Weight of catalog content similarity in customer/session recs (reaches products the model lacks).
CONTENT_WEIGHT = 0.25
#: Weight of content similarity in "similar items" when the model knows the product.
SIMILAR_CONTENT_WEIGHT = 0.5
#: Trending: events of the last ``TRENDING_DAYS`` before the store's newest event, half-life in days.
TRENDING_DAYS = 30
TRENDING_HALF_LIFE_DAYS = 7.0
#: A country needs this many trending events before it gets its own trending list.
COUNTRY_MIN_EVENTS = 5
#: Candidates scored before rules (rules drop some; MMR needs a pool).
POOL = 100
MAX_N = 100
#: "Similar items" pools kept per store state (~2.5 KB each; the state is rebuilt with the catalog/model).
SIMILAR_POOL_CACHE = 20_000

_controller: Any = None
#: A per-request ``Store`` instance may carry its active ModelVersion id (0: none) under this name,
#: read together with the API key (``api_views._store_of_key``); ``serving_state`` then skips its query.
ACTIVE_VERSION_ATTR = "_serving_active_version_id"


@dataclass
class ServingState:
    """In-memory serving tables of one store and model version over catalog positions."""

    store_id: int
    loaded: LoadedModel | None
    snap: CatalogSnapshot
    col_pos: np.ndarray  # model column -> catalog position (-1 if the product is gone)
    pos_col: np.ndarray  # catalog position -> model column (-1 if the model doesn't know it)
    popularity: np.ndarray
    trending: np.ndarray
    trending_by_country: dict[str, np.ndarray]
    built_at: float = field(default_factory=time.monotonic)
    #: The active ModelVersion id this state was built for (0: none), from ``_active_version_id``.
    active_seen: int = -1
    #: Model column -> its item-item similarity row (finite, float32), filled on demand: the same
    #: popular products anchor most requests, and the hybrid's similarity costs ~1 ms per call.
    sim_cache: dict[int, np.ndarray] = field(default_factory=dict)
    #: (product pk, pool size) -> the "similar items" pool before rules: (pks, scores, from_content).
    #: It depends only on the model and the catalog snapshot, both fixed for this state's lifetime.
    similar_pools: dict[tuple[int, int], tuple[list[int], list[float], list[bool]]] = field(default_factory=dict)

    @property
    def version_id(self) -> int | None:
        return self.loaded.version.pk if self.loaded else None

    @property
    def algorithm(self) -> str:
        return self.loaded.version.algorithm if self.loaded else "trending"


_states: dict[int, ServingState] = {}
_tables: dict[tuple[int, int | None], tuple[float, tuple]] = {}
_lock = threading.Lock()


def clear_serving_cache() -> None:
    with _lock:
        _states.clear()
        _tables.clear()


def _popularity_tables(store_id: int, version_id: int | None, snap: CatalogSnapshot) -> tuple:
    """Popularity (distinct customers) and trending (decayed weighted events) per catalog position."""
    key = (store_id, version_id)
    hit = _tables.get(key)
    ttl = float(getattr(settings, "SERVING_POPULARITY_TTL", 600))
    if hit is not None and time.monotonic() - hit[0] < ttl:
        pop_pk, trend_rows = hit[1]
    else:
        from shop_recs.activity.models import Event

        weight = Case(
            *[When(event_type=k, then=Value(v)) for k, v in DEFAULT_EVENT_WEIGHTS.items() if v > 0],
            default=Value(0.0),
            output_field=FloatField(),
        )
        with store_scope(store_id):
            base = Event.objects.filter(product__isnull=False).order_by()
            pop_pk = dict(
                base.values("product_id").annotate(n=Count("customer_id", distinct=True)).values_list("product_id", "n")
            )
            latest = base.aggregate(t=Max("timestamp"))["t"]
            trend_rows = []
            if latest is not None:
                # Day buckets keep the query small; the decay is applied per day in Python.
                from django.db.models.functions import TruncDate

                trend_rows = list(
                    base.filter(timestamp__gte=latest - timedelta(days=TRENDING_DAYS))
                    .annotate(day=TruncDate("timestamp"), country=F("customer__country"))
                    .values("product_id", "country", "day")
                    .annotate(w=Sum(weight))
                    .values_list("product_id", "country", "day", "w")
                )
                last_day = latest.date()
                trend_rows = [
                    (p, c or "", float(w or 0) * 0.5 ** ((last_day - d).days / TRENDING_HALF_LIFE_DAYS))
                    for p, c, d, w in trend_rows
                ]
        with _lock:
            _tables[key] = (time.monotonic(), (pop_pk, trend_rows))
    n = len(snap)
    # A tiny recency tie-break: with no events at all, the newest products come first.
    tie = np.zeros(n, dtype=np.float32)
    if n:
        order = np.argsort(np.argsort(snap.created))
        tie = (1e-6 * order / n).astype(np.float32)
    popularity = tie.copy()
    for pk, cnt in pop_pk.items():
        i = snap.index.get(int(pk))
        if i is not None:
            popularity[i] += cnt
    trending = tie.copy()
    by_country: dict[str, np.ndarray] = {}
    country_events: dict[str, float] = {}
    for pk, country, w in trend_rows:
        i = snap.index.get(int(pk))
        if i is None:
            continue
        trending[i] += w
        if country:
            arr = by_country.setdefault(country, tie.copy())
            arr[i] += w
            country_events[country] = country_events.get(country, 0.0) + 1
    by_country = {c: a for c, a in by_country.items() if country_events[c] >= COUNTRY_MIN_EVENTS}
    return popularity, trending, by_country


def _active_version_id(store_id: int) -> int:
    """The store's active ModelVersion id (0: none): one indexed lookup, no model instance."""
    from shop_recs.recommend.models import ModelVersion

    table = connection.ops.quote_name(ModelVersion._meta.db_table)
    with connection.cursor() as cur:
        cur.execute(f"SELECT id FROM {table} WHERE store_id = %s AND is_active LIMIT 1", [store_id])  # noqa: S608
        row = cur.fetchone()
    return int(row[0]) if row else 0


def _model_still_cached(loaded: LoadedModel | None) -> bool:
    from shop_recs.recommend import services

    return loaded is None or loaded.version.pk in services._cache


def serving_state(store: Store | int) -> ServingState:
    """The store's serving state for its active model and the current catalog snapshot."""
    return _serving_state(store, None)


def _serving_state(store: Store | int, active_id: int | None) -> ServingState:
    """``serving_state``; ``active_id`` is the active version id when the caller already read it.

    The full ``load_active_model`` (two ORM queries, fallback handling) runs only when the active
    version id differs from the one the cached state was built for; otherwise one raw lookup (or
    none, when ``active_id`` is given) confirms the cached state.
    """
    store_id = int(getattr(store, "pk", store))
    snap = catalog_snapshot(store_id)
    if active_id is None:
        active_id = getattr(store, ACTIVE_VERSION_ATTR, None)
    if active_id is None:
        active_id = _active_version_id(store_id)
    state = _states.get(store_id)
    if (
        state is not None
        and state.snap is snap
        and state.active_seen == active_id
        and _model_still_cached(state.loaded)
    ):
        return state
    from shop_recs.stores.models import Store as StoreModel

    store_obj = store if isinstance(store, StoreModel) else StoreModel.objects.get(pk=store_id)
    loaded = load_active_model(store_obj)
    version_id = loaded.version.pk if loaded else None
    if state is not None and state.snap is snap and state.version_id == version_id and state.loaded is loaded:
        state.active_seen = active_id
        return state
    n_cols = len(loaded.item_ids) if loaded else 0
    col_pos = np.full(n_cols, -1, dtype=np.int64)
    pos_col = np.full(len(snap), -1, dtype=np.int64)
    if loaded:
        for col, pk in enumerate(loaded.item_ids.tolist()):
            i = snap.index.get(pk)
            if i is not None:
                col_pos[col] = i
                pos_col[i] = col
    popularity, trending, by_country = _popularity_tables(store_id, version_id, snap)
    state = ServingState(store_id, loaded, snap, col_pos, pos_col, popularity, trending, by_country)
    state.active_seen = active_id
    with _lock:
        _states[store_id] = state
    return state


# --- scoring primitives ---------------------------------------------------------------------------


def _scatter(state: ServingState, model_scores: np.ndarray) -> np.ndarray:
    """Model-column scores -> catalog positions (products unknown to the model score 0)."""
    out = np.zeros(len(state.snap), dtype=np.float32)
    ok = state.col_pos >= 0
    out[state.col_pos[ok]] = model_scores[ok]
    return out


def _similar_rows(model: Any, cols: list[int]) -> np.ndarray:
    if not cols:
        return np.zeros((0, 0), dtype=np.float32)
    rows = np.asarray(model._similar_scores(np.asarray(cols, dtype=np.int64)), dtype=np.float32)
    rows[~np.isfinite(rows)] = 0.0
    rows[np.arange(len(cols)), cols] = 0.0
    return rows


def _cached_similar_rows(state: ServingState, model: Any, cols: list[int]) -> np.ndarray:
    """``_similar_rows`` through the state's row cache (only for the state's own model).

    The cache holds at most ``SERVING_SIMILARITY_CACHE_MB`` (64) of rows per store and process;
    past that the oldest rows are dropped. A new model version builds a new state, so rows never
    outlive their model.
    """
    loaded = state.loaded
    if not cols or loaded is None or model is not loaded.model:
        return _similar_rows(model, cols)
    cache = state.sim_cache
    missing = list(dict.fromkeys(c for c in cols if c not in cache))
    if missing:
        rows = np.asarray(model._similar_scores(np.asarray(missing, dtype=np.int64)), dtype=np.float32)
        rows[~np.isfinite(rows)] = 0.0
        n_items = rows.shape[1] if rows.ndim == 2 else 1
        budget = max(1, int(float(getattr(settings, "SERVING_SIMILARITY_CACHE_MB", 64)) * 2**20 / (4 * n_items)))
        for c, row in zip(missing, rows, strict=True):
            while len(cache) >= budget:
                cache.pop(next(iter(cache)), None)
            cache[c] = row.copy()
    out = np.stack([cache[c] for c in cols])
    out[np.arange(len(cols)), cols] = 0.0
    return out


def _explainer(model: Any) -> Any:
    """The model (or hybrid component) that can attribute a score to history items, if any."""
    if hasattr(model, "item_contributions"):
        return model
    for label in getattr(model, "labels", []):
        comp = model.models_[label]
        if hasattr(comp, "item_contributions") and label != getattr(model, "content_model", "content"):
            return comp
    return None


@dataclass
class Scored:
    """Candidates over catalog positions plus what the reasons need."""

    scores: np.ndarray
    reason: str  # default reason code
    history: list[int] = field(default_factory=list)  # history product pks, newest first
    purchased: set[int] = field(default_factory=set)
    hist_row: Any = None
    sim_rows: np.ndarray | None = None  # model similarity of recent history cols (over model cols)
    sim_pks: list[int] = field(default_factory=list)
    exclude_pos: list[int] = field(default_factory=list)


def score_history(state: ServingState, weights: dict[int, float], recent: list[int], model: Any = None) -> Scored:
    """Personal scores from a history (product pk -> weight; ``recent`` newest first)."""
    snap = state.snap
    loaded = state.loaded
    model = model if model is not None else (loaded.model if loaded else None)
    total = np.zeros(len(snap), dtype=np.float32)
    out = Scored(total, "collaborative", history=list(recent) or list(weights))
    known_recent = [pk for pk in out.history if loaded and loaded.column_of(pk) is not None][:20]
    if model is not None and loaded is not None:
        row = realtime.history_row(weights, loaded.item_index, len(loaded.item_ids))
        out.hist_row = row
        if row.nnz:
            # An id past the trained users makes factor models fold the row in (current history).
            uid = np.array([len(loaded.user_ids)], dtype=np.int64)
            model_scores = np.asarray(model.score_users(uid, row), dtype=np.float32)[0]
            total += _scatter(state, realtime.minmax(model_scores))
            cols = [loaded.column_of(pk) for pk in known_recent]
            out.sim_rows = _cached_similar_rows(state, model, cols)
            out.sim_pks = known_recent
            total += REALTIME_WEIGHT * _scatter(state, realtime.neighbour_scores(out.sim_rows))
    positions = [snap.index[pk] for pk in out.history if pk in snap.index][:20]
    if positions:
        content = snap.content_similar(positions)
        weight = CONTENT_WEIGHT if (model is not None and known_recent) else 1.0
        if weight == 1.0:
            out.reason = "content_similar"
        total += weight * realtime.minmax(content)
    out.exclude_pos = positions
    out.scores = total
    return out


def _top_candidates(state: ServingState, scored: Scored, reason: str, k: int = POOL) -> list[Candidate]:
    scores = scored.scores.copy()
    if scored.exclude_pos:
        scores[scored.exclude_pos] = -np.inf
    k = min(k, len(scores))
    if k <= 0:
        return []
    idx = np.argpartition(-scores, k - 1)[:k]
    idx = idx[np.argsort(-scores[idx], kind="stable")]
    idx = idx[np.isfinite(scores[idx])]
    return [
        Candidate(pk, sc, reason, "")
        for pk, sc in zip(state.snap.pks[idx].tolist(), scores[idx].astype(np.float64).tolist(), strict=True)
    ]


def _reason_texts(state: ServingState, scored: Scored, items: list[Candidate], model: Any = None) -> None:
    """Fill reason code, text and anchor for the final page only (explanations cost per item)."""
    snap, loaded = state.snap, state.loaded
    model = model if model is not None else (loaded.model if loaded else None)
    explainer = _explainer(model) if model is not None else None
    for cand in items:
        if cand.reason_code in ("pinned", "boosted", "popular", "trending"):
            continue
        anchor = None
        col = loaded.column_of(cand.product_id) if loaded else None
        if explainer is not None and col is not None and scored.hist_row is not None and scored.hist_row.nnz:
            try:
                contributions = _explain(explainer, scored.hist_row, col)
            except (TypeError, ValueError, IndexError):
                contributions = []
            if contributions:
                anchor = int(loaded.item_ids[contributions[0].item_id])
        if anchor is None and col is not None and scored.sim_rows is not None and len(scored.sim_pks):
            column = scored.sim_rows[:, col]
            if column.max(initial=0) > 0:
                anchor = scored.sim_pks[int(np.argmax(column))]
        if anchor is None and scored.history:
            pos = [snap.index[pk] for pk in scored.history[:20] if pk in snap.index]
            i = snap.index.get(cand.product_id)
            if pos and i is not None:
                x = snap.content_index()
                sims = np.asarray((x[pos] @ x[i].T).toarray()).ravel()
                if sims.max(initial=0) > 0:
                    anchor = int(snap.pks[pos[int(np.argmax(sims))]])
                    if col is None:
                        cand.reason_code = "content_similar"
        if anchor is None:
            cand.reason_code = "collaborative" if col is not None else cand.reason_code
            cand.reason_text = _("Picked for you")
            continue
        cand.anchor_product_id = anchor
        title = snap.title_of(anchor)
        if cand.reason_code == "content_similar":
            cand.reason_text = _("Similar to %(title)s") % {"title": title}
        elif anchor in scored.purchased:
            cand.reason_code = "because_viewed"
            cand.reason_text = _("Because you bought %(title)s") % {"title": title}
        else:
            cand.reason_code = "because_viewed"
            cand.reason_text = _("Because you viewed %(title)s") % {"title": title}


def _explain(explainer: Any, row: Any, col: int) -> list:
    from shop_recs.recsys.explain import explain

    return explain(explainer, row, col, top=1)


def _fill_simple_reasons(items: list[Candidate]) -> None:
    texts = {
        "popular": _("Popular in this shop"),
        "trending": _("Trending now"),
        "boosted": _("Recommended by the shop"),
        "pinned": _("Featured by the shop"),
    }
    for cand in items:
        if not cand.reason_text and cand.reason_code in texts:
            cand.reason_text = texts[cand.reason_code]


def _diversity_similarity(state: ServingState) -> Any:
    """MMR similarity among candidate pks: the model's item-item similarity, else same category."""
    loaded = state.loaded
    if loaded is None:
        return None
    snap = state.snap

    def sim(pks: np.ndarray) -> np.ndarray:
        cols = np.array([loaded.column_of(int(pk)) if loaded.column_of(int(pk)) is not None else -1 for pk in pks])
        out = np.zeros((len(pks), len(pks)), dtype=np.float64)
        known = np.flatnonzero(cols >= 0)
        if len(known):
            rows = _cached_similar_rows(state, loaded.model, cols[known].tolist())
            block = rows[:, cols[known]]
            for r_i, r in enumerate(known):
                out[r, known] = realtime.minmax(block[r_i])
        cats = np.array([snap.category_of(int(pk)) for pk in pks])
        same = (cats[:, None] == cats[None, :]) & (cats[:, None] >= 0)
        return np.maximum(out, 0.5 * same)

    return sim


# --- responses ------------------------------------------------------------------------------------


@dataclass
class ServeResult:
    """A served list: the items as plain dicts and what the log and the response carry."""

    items: list[dict[str, Any]]
    list_id: str
    model_version: int | None
    algorithm: str
    placement: str
    candidates: list[Candidate] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "list_id": self.list_id,
            "model_version": self.model_version,
            "algorithm": self.algorithm,
            "placement": self.placement,
            "items": self.items,
        }


def render_items(snap: CatalogSnapshot, items: list[Candidate]) -> list[dict[str, Any]]:
    out = []
    for cand in items:
        base = snap.items[snap.index[cand.product_id]]
        out.append(
            {
                **base,
                "score": round(float(cand.score), 6),
                "reason": {
                    "code": cand.reason_code,
                    "text": cand.reason_text,
                    "anchor_sku": snap.sku_of(cand.anchor_product_id),
                },
            }
        )
    return out


def log_list(
    state: ServingState,
    endpoint: str,
    items: list[Candidate],
    *,
    placement: str = "",
    customer_id: int | None = None,
    anchor_product_id: int | None = None,
    algorithm: str | None = None,
    variant: str = "",
    log: bool = True,
) -> str:
    """Record the served list (one INSERT) and return its id for attribution."""
    list_id = uuid.uuid4()
    if log:
        # One raw INSERT (no model instance, no signals: RecommendationList has no receivers). Only the
        # quoted table name is interpolated; every value is a parameter.
        with connection.cursor() as cur:
            cur.execute(
                _insert_list_sql(),
                [
                    state.store_id,
                    list_id.hex if connection.vendor == "sqlite" else list_id,
                    endpoint,
                    placement[:64],
                    customer_id,
                    state.version_id,
                    algorithm or state.algorithm,
                    variant[:64],
                    anchor_product_id,
                    json.dumps([c.product_id for c in items]),
                    connection.ops.adapt_datetimefield_value(timezone.now()),
                ],
            )
    return str(list_id)


_INSERT_LIST_SQL: str | None = None


def _insert_list_sql() -> str:
    global _INSERT_LIST_SQL
    if _INSERT_LIST_SQL is None:
        from shop_recs.recommend.models import RecommendationList

        table = connection.ops.quote_name(RecommendationList._meta.db_table)
        cast = "::jsonb" if connection.vendor == "postgresql" else ""
        _INSERT_LIST_SQL = (
            f"INSERT INTO {table} (store_id, list_id, endpoint, placement, customer_id, model_version_id, "  # noqa: S608
            f"algorithm, variant, anchor_product_id, product_ids, created_at) "
            f"VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s{cast}, %s)"
        )
    return _INSERT_LIST_SQL


def _finish(
    state: ServingState,
    endpoint: str,
    ranked: list[Candidate],
    offset: int,
    n: int,
    *,
    placement: str,
    customer_id: int | None = None,
    anchor_product_id: int | None = None,
    algorithm: str | None = None,
    scored: Scored | None = None,
    log: bool = True,
    model: Any = None,
) -> ServeResult:
    page = ranked[offset : offset + n]
    if scored is not None:
        _reason_texts(state, scored, page, model=model)
    _fill_simple_reasons(page)
    list_id = log_list(
        state,
        endpoint,
        page,
        placement=placement,
        customer_id=customer_id,
        anchor_product_id=anchor_product_id,
        algorithm=algorithm,
        log=log,
    )
    return ServeResult(
        items=render_items(state.snap, page),
        list_id=list_id,
        model_version=state.version_id,
        algorithm=algorithm or state.algorithm,
        placement=placement,
        candidates=page,
    )


def _context(state: ServingState, limit: int, filters: dict[str, Any] | None, **kw: Any) -> RuleContext:
    filters = filters or {}
    category_ids = None
    if filters.get("category"):
        category_ids = state.snap.categories_under(filters["category"])
    return RuleContext(
        limit=limit,
        category_ids=category_ids,
        min_price=filters.get("min_price"),
        max_price=filters.get("max_price"),
        diversity=filters.get("diversity"),
        exclude=set(filters.get("exclude_ids", ())) | set(kw.pop("exclude", ())),
        similarity=_diversity_similarity(state),
        overrides=filters.get("overrides"),
        **kw,
    )


def _fill(personal: list[Candidate], cold: list[Candidate], skip: set[int]) -> list[Candidate]:
    """Cold candidates ranked strictly below every personal one (their own order kept)."""
    floor = min((c.score for c in personal), default=0.0) - 1.0
    out = [c for c in cold if c.product_id not in skip]
    for rank, cand in enumerate(out):
        cand.score = floor - rank * 1e-3
    return out


def cold_candidates(state: ServingState, kind: str = "trending", country: str = "") -> list[Candidate]:
    if kind == "trending":
        scores = state.trending_by_country.get(country, state.trending) if country else state.trending
    else:
        scores = state.popularity
    return _top_candidates(state, Scored(scores, kind), kind, k=max(POOL, 0))


def recommend_for_customer(
    store: Store,
    customer: Any | None,
    *,
    n: int = 10,
    offset: int = 0,
    placement: str = "",
    filters: dict[str, Any] | None = None,
    model: Any = None,
    algorithm: str | None = None,
    log: bool = True,
) -> ServeResult:
    """Personal recommendations; a customer with no history (or unknown) gets trending (per country).

    ``customer`` is a ``Customer`` or a :class:`realtime.ServingCustomer` (the API's hot path: its
    activity and the active version id were read in the same query as the customer).
    """
    prefetched = isinstance(customer, realtime.ServingCustomer)
    state = _serving_state(store, customer.active_version_id if prefetched else None)
    if prefetched:
        activity = customer.activity
    else:
        activity = realtime.recent_activity(state.store_id, customer.pk) if customer is not None else None
    weights = activity.weights() if activity else {}
    limit = offset + n
    ctx = _context(state, limit + 0, filters, purchased=activity.purchased if activity else set())
    with _blas_limit_ctx():
        if weights:
            scored = score_history(state, weights, activity.recent_products, model=model)
            scored.purchased = activity.purchased
            # Seen-but-not-bought items are left out (as filter_already_liked_items does); purchases are
            # the purchased rule's business (repurchasable categories may bring them back).
            scored.exclude_pos = [
                state.snap.index[pk] for pk in weights if pk in state.snap.index and pk not in activity.purchased
            ]
            candidates = _top_candidates(state, scored, scored.reason, k=max(POOL, 3 * limit))
            # Thin or exotic histories: fill with trending so a page is never short.
            candidates += _fill(
                candidates,
                cold_candidates(state, "trending", getattr(customer, "country", "")),
                set(weights) - activity.purchased,
            )
            ranked = apply_rules(store, candidates, customer_id=customer.pk, context=ctx)
            return _finish(
                state,
                "customer",
                ranked,
                offset,
                n,
                placement=placement,
                customer_id=customer.pk,
                scored=scored,
                algorithm=algorithm,
                log=log,
                model=model,
            )
        candidates = cold_candidates(state, "trending", getattr(customer, "country", "") if customer else "")
        ranked = apply_rules(store, candidates, customer_id=getattr(customer, "pk", None), context=ctx)
        return _finish(
            state,
            "customer",
            ranked,
            offset,
            n,
            placement=placement,
            customer_id=getattr(customer, "pk", None),
            algorithm="trending",
            log=log,
        )


def recommend_for_session(
    store: Store, viewed_pks: list[int], *, n: int = 10, placement: str = "", filters: dict[str, Any] | None = None
) -> ServeResult:
    """Anonymous visitor: item-based scores from the products they viewed (newest last in the input)."""
    state = serving_state(store)
    recent = list(dict.fromkeys(reversed(viewed_pks)))
    weights = {pk: DEFAULT_EVENT_WEIGHTS["view"] for pk in recent}
    ctx = _context(state, n, filters, purchased=set())
    with _blas_limit_ctx():
        if recent:
            scored = score_history(state, weights, recent)
            candidates = _top_candidates(state, scored, scored.reason, k=max(POOL, 3 * n))
        else:
            scored = None
            candidates = []
        candidates += _fill(candidates, cold_candidates(state, "trending"), set(recent))
        ctx.exclude = set(ctx.exclude) | set(recent)
        ranked = apply_rules(store, candidates, context=ctx)
        return _finish(state, "session", ranked, 0, n, placement=placement, scored=scored)


def similar_products(
    store: Store, product_pk: int, *, n: int = 10, placement: str = "", log: bool = True
) -> ServeResult:
    """Collaborative + content neighbours, so a product with no interactions has neighbours too."""
    state = serving_state(store)
    snap, loaded = state.snap, state.loaded
    pos = snap.index[product_pk]
    col = loaded.column_of(product_pk) if loaded else None
    title = snap.titles[pos]
    pool_size = max(POOL, 3 * n)
    with _blas_limit_ctx():
        pool = state.similar_pools.get((product_pk, pool_size))
        if pool is None:
            content = realtime.minmax(snap.content_similar([pos]))
            collab = np.zeros(len(snap), dtype=np.float32)
            if col is not None:
                collab = _scatter(state, realtime.minmax(_cached_similar_rows(state, loaded.model, [col])[0]))
            content_weight = SIMILAR_CONTENT_WEIGHT if col is not None else 1.0
            scores = collab + content_weight * content
            scores[pos] = -np.inf
            top = _top_candidates(state, Scored(scores, "collaborative"), "collaborative", k=pool_size)
            idx = [snap.index[c.product_id] for c in top]
            pool = (
                [c.product_id for c in top],
                [c.score for c in top],
                (content_weight * content[idx] >= collab[idx]).tolist(),
            )
            if len(state.similar_pools) >= SIMILAR_POOL_CACHE:
                state.similar_pools.pop(next(iter(state.similar_pools)), None)
            state.similar_pools[(product_pk, pool_size)] = pool
        # Both texts once per request, not per candidate (gettext is ~40 us a call).
        content_text = _("Similar to %(title)s") % {"title": title}
        collab_text = _("Customers who liked %(title)s also liked this") % {"title": title}
        candidates = [
            Candidate(
                pk,
                score,
                "content_similar" if from_content else "collaborative",
                content_text if from_content else collab_text,
                product_pk,
            )
            for pk, score, from_content in zip(*pool, strict=True)
        ]
        ctx = _context(state, n, None, purchased=set(), insert_pinned=False, exclude=[product_pk])
        ranked = apply_rules(store, candidates, context=ctx)
        return _finish(state, "similar", ranked, 0, n, placement=placement, anchor_product_id=product_pk, log=log)


def frequently_bought_together(
    store: Store, product_pk: int, *, n: int = 5, placement: str = "", log: bool = True
) -> ServeResult:
    from shop_recs.recommend.fbt import fbt_table

    state = serving_state(store)
    title = state.snap.title_of(product_pk)
    rows = fbt_table(state.store_id).get(product_pk, [])
    candidates = [
        Candidate(
            pk, lift, "frequently_bought_together", _("Often bought with %(title)s") % {"title": title}, product_pk
        )
        for pk, lift, _support in rows
    ]
    ctx = _context(state, n, None, purchased=set(), insert_pinned=False, exclude=[product_pk])
    ctx.diversity = 0.0
    ranked = apply_rules(store, candidates, context=ctx)
    return _finish(
        state, "fbt", ranked, 0, n, placement=placement, anchor_product_id=product_pk, algorithm="fbt", log=log
    )


def popular(
    store: Store, kind: str, *, n: int = 10, placement: str = "", filters: dict[str, Any] | None = None
) -> ServeResult:
    state = serving_state(store)
    ctx = _context(state, n, filters, purchased=set())
    ctx.diversity = 0.0 if ctx.diversity is None else ctx.diversity
    scores = state.trending if kind == "trending" else state.popularity
    pool = max(POOL, 3 * n)
    if ctx.category_ids is not None:
        # A category list must not run dry because the global top-100 is elsewhere.
        mask = np.isin(state.snap.category, list(ctx.category_ids))
        scores = np.where(mask, scores, -np.inf).astype(np.float32)
    candidates = _top_candidates(state, Scored(scores, kind), kind, k=pool)
    ranked = apply_rules(store, candidates, context=ctx)
    return _finish(state, kind, ranked, 0, n, placement=placement, algorithm=kind)


class _blas_limit_ctx:  # noqa: N801 - used like a function
    """BLAS at ``SERVING_BLAS_THREADS`` (1) for the scoring, restored afterwards."""

    def __enter__(self) -> None:
        global _controller
        if _controller is None:
            _controller = ThreadpoolController()  # scanning the loaded libraries is the slow part: once
        self._ctl = _controller.limit(limits=int(getattr(settings, "SERVING_BLAS_THREADS", 1)), user_api="blas")
        self._ctl.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._ctl.__exit__(*exc)
