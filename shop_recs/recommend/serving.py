"""The serving hot path: candidates from the active model + live events, store rules, reasons, list log.

Everything per request is numpy over in-memory state; the database is touched for the customer
(1 query), their latest events and purchases (1 query, :func:`realtime.recent_activity`) and the
list-log INSERT (1 query). Per store and model version we keep a :class:`ServingState`: the loaded
model (``load_active_model`` caches it), the model-column -> catalog-position map and popularity /
trending arrays over catalog positions. BLAS runs single-threaded here (one user's scoring is
faster with 1 thread and web workers run in parallel anyway).

When the model version has precomputed serving arrays (``candidates.py``: each customer's top 200
candidates and each item's top 50 neighbours, written by training next to the artifact), customer
recommendations, similar items, MMR similarity and the ads' affinities read those instead of scoring
the catalog: candidates = the customer's precomputed list + the neighbour lists of their latest
events (real time) + content neighbours of those products, blended with numpy over a few hundred
ids (:func:`fast_score`). Without the arrays (a version trained before them, or a caller passing
its own ``model``, e.g. an experiment variant) the full scoring below runs as before.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
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
from django.utils.translation import get_language, gettext_noop
from django.utils.translation import gettext as _
from threadpoolctl import ThreadpoolController

from shop_recs.recommend import candidates as precomputed
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
logger = logging.getLogger(__name__)
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
    #: The model version's precomputed serving arrays (``candidates.py``); ``None``: score on the request.
    pre: precomputed.Precomputed | None = None
    pre_checked_at: float = 0.0
    #: Catalog position -> its top content neighbours (positions, 0..1 scores), filled on demand.
    content_nb: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    @property
    def version_id(self) -> int | None:
        return self.loaded.version.pk if self.loaded else None

    @property
    def algorithm(self) -> str:
        return self.loaded.version.algorithm if self.loaded else "trending"


_states: dict[int, ServingState] = {}
#: version pk -> (artifact checksum, precomputed arrays or None); shared by the states of a version.
_precomputed: dict[int, tuple[str, precomputed.Precomputed | None]] = {}
#: How often a state without a sidecar looks for one again (a backfill may write it later).
PRECOMPUTED_RETRY_SECONDS = 30.0
_tables: dict[tuple[int, int | None], tuple[float, tuple]] = {}
_lock = threading.Lock()


def clear_serving_cache() -> None:
    with _lock:
        _states.clear()
        _tables.clear()
        _precomputed.clear()


def _load_precomputed(loaded: LoadedModel | None, retry: bool = False) -> precomputed.Precomputed | None:
    """The version's sidecar arrays (read once per process and version; ``None`` if it has none)."""
    if loaded is None:
        return None
    version = loaded.version
    hit = _precomputed.get(version.pk)
    if hit is not None and hit[0] == version.checksum and (hit[1] is not None or not retry):
        return hit[1]
    from shop_recs.recommend.services import artifact_path

    pre = precomputed.load_sidecar(artifact_path(version), version.checksum, len(loaded.user_ids), len(loaded.item_ids))
    with _lock:
        for key in [k for k in _precomputed if k != version.pk and k not in _live_versions()]:
            _precomputed.pop(key, None)
        _precomputed[version.pk] = (version.checksum, pre)
    return pre


def _live_versions() -> set[int]:
    return {s.version_id for s in _states.values() if s.version_id is not None}


def _state_precomputed(state: ServingState, model: Any = None) -> precomputed.Precomputed | None:
    """The state's precomputed arrays when they apply (the state's own model), else ``None``."""
    loaded = state.loaded
    if loaded is None or (model is not None and model is not loaded.model):
        return None
    if state.pre is None and time.monotonic() - state.pre_checked_at > PRECOMPUTED_RETRY_SECONDS:
        state.pre_checked_at = time.monotonic()
        state.pre = _load_precomputed(loaded, retry=True)
    return state.pre


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
    state.pre = _load_precomputed(loaded)
    state.pre_checked_at = time.monotonic()
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


# --- the precomputed fast path --------------------------------------------------------------------


@dataclass
class FastScored:
    """Candidates of the precomputed path (catalog positions + blended scores) and what reasons need."""

    pos: np.ndarray
    scores: np.ndarray
    reason: str
    anchor_cols: np.ndarray  # model columns of the latest known history items, newest first (<= 20)
    anchor_pks: list[int]
    history_pos: list[int]  # catalog positions of the latest history items (content neighbours)
    purchased: set[int] = field(default_factory=set)


def _to_pos(state: ServingState, cols: np.ndarray) -> np.ndarray:
    """Model columns (-1 padded) -> catalog positions (-1 for padding and products no longer listed)."""
    cols = np.asarray(cols, dtype=np.int64)
    if not len(state.col_pos):
        return np.full(cols.shape, -1, dtype=np.int64)
    return np.where(cols >= 0, state.col_pos[np.maximum(cols, 0)], -1)


def _content_neighbours(state: ServingState, pos: int, k: int = POOL) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` content neighbours of a catalog position, scores scaled to 0..1 (cached per state)."""
    hit = state.content_nb.get((pos, k))
    if hit is None:
        key = (pos, k)
        sims = state.snap.content_similar([pos])
        k = min(k, len(sims) - 1)
        idx = np.argpartition(-sims, k - 1)[:k] if k > 0 else np.zeros(0, dtype=np.int64)
        idx = idx[np.isfinite(sims[idx]) & (sims[idx] > 0)]
        sc = sims[idx]
        order = np.argsort(-sc, kind="stable")
        # Cosine: the catalog minimum is 0, so dividing by the maximum is the old min-max scaling.
        hit = (idx[order].astype(np.int64), (sc[order] / (sc.max() if len(sc) else 1.0)).astype(np.float32))
        if len(state.content_nb) >= SIMILAR_POOL_CACHE:
            state.content_nb.pop(next(iter(state.content_nb)), None)
        state.content_nb[key] = hit
    return hit


def fast_score(
    state: ServingState,
    pre: precomputed.Precomputed,
    customer_pk: int | None,
    weights: dict[int, float],
    recent: list[int],
) -> FastScored:
    """The blend of :func:`score_history` over a few hundred candidates instead of the catalog.

    * the customer's precomputed top candidates (weight 1, 0..1 scaled as the old model part); a
      customer the model does not know (joined after training) gets the event-weighted neighbours
      of their known history items instead of a fold-in;
    * real time: the neighbour lists of the latest ``NEIGHBOUR_ANCHORS`` known items, decayed by
      recency (``REALTIME_WEIGHT``);
    * content: the content neighbours of the latest history products (``CONTENT_WEIGHT``; weight 1
      when the model knows none of them, so new products still get recommendations).
    """
    loaded, snap = state.loaded, state.snap
    history = list(recent) or list(weights)
    known = [(pk, c) for pk in history if (c := loaded.item_index.get(pk)) is not None][:20]
    anchor_cols = np.array([c for _pk, c in known], dtype=np.int64)
    parts: list[tuple[np.ndarray, np.ndarray, float]] = []
    row = loaded.user_index.get(int(customer_pk)) if customer_pk is not None else None
    if row is not None:
        parts.append((_to_pos(state, pre.user_cols[row]), np.asarray(pre.user_scores[row]), 1.0))
    elif len(anchor_cols):
        w = np.array([weights.get(pk, 1.0) for pk, _c in known], dtype=np.float32)
        w /= w.max() or 1.0
        ids, sc = precomputed.blend(
            [(_to_pos(state, pre.item_cols[anchor_cols]), pre.item_scores[anchor_cols] * w[:, None], 1.0)]
        )
        if len(sc) and sc.max() > 0:
            parts.append((ids, sc / sc.max(), 1.0))
    if len(anchor_cols):
        a = anchor_cols[: realtime.NEIGHBOUR_ANCHORS]
        decay = (realtime.NEIGHBOUR_DECAY ** np.arange(len(a))).astype(np.float32)
        parts.append((_to_pos(state, pre.item_cols[a]), pre.item_scores[a] * decay[:, None], REALTIME_WEIGHT))
    history_pos = [snap.index[pk] for pk in history if pk in snap.index][: realtime.NEIGHBOUR_ANCHORS]
    if history_pos:
        lists = [_content_neighbours(state, p) for p in history_pos]
        decay = realtime.NEIGHBOUR_DECAY ** np.arange(len(lists))
        ids, sc = precomputed.blend([(p, s, d) for (p, s), d in zip(lists, decay, strict=True)])
        if len(sc) and sc.max() > 0:
            parts.append((ids, sc / sc.max(), CONTENT_WEIGHT if len(anchor_cols) else 1.0))
    pos, scores = precomputed.blend(parts)
    return FastScored(
        pos,
        scores,
        "collaborative" if len(anchor_cols) else "content_similar",
        anchor_cols,
        [pk for pk, _c in known],
        history_pos,
    )


def candidate_affinities(
    state: ServingState, customer_pk: int | None, weights: dict[int, float], recent: list[int]
) -> dict[int, float] | None:
    """Product pk -> the customer's personal score scaled to 0..1, over their few hundred candidates
    (products outside them: 0). ``None`` when the version has no precomputed arrays (callers then
    score the catalog as before). For the ads ranking: a lookup, never a full-catalog scoring."""
    pre = _state_precomputed(state)
    if pre is None or not weights:
        return None
    fs = fast_score(state, pre, customer_pk, weights, recent)
    top = float(fs.scores.max()) if len(fs.scores) else 0.0
    if top <= 0:
        return {}
    return dict(zip(state.snap.pks[fs.pos].tolist(), (fs.scores / top).tolist(), strict=True))


def _fast_top(state: ServingState, fs: FastScored, exclude_pos: list[int], k: int) -> list[Candidate]:
    pos, scores = fs.pos, fs.scores
    if exclude_pos and len(pos):
        keep = ~np.isin(pos, np.asarray(exclude_pos, dtype=np.int64))
        pos, scores = pos[keep], scores[keep]
    order = np.argsort(-scores, kind="stable")[:k]
    return [
        Candidate(pk, sc, fs.reason, "")
        for pk, sc in zip(state.snap.pks[pos[order]].tolist(), scores[order].astype(np.float64).tolist(), strict=True)
    ]


def _fast_reasons(state: ServingState, pre: precomputed.Precomputed, fs: FastScored, items: list[Candidate]) -> None:
    """Reasons from the precomputed neighbour lists: the anchor is the history item whose list holds
    the candidate with the highest score; else the history product most content-similar to it."""
    loaded, snap = state.loaded, state.snap
    nb_cols = pre.item_cols[fs.anchor_cols] if len(fs.anchor_cols) else None
    nb_scores = pre.item_scores[fs.anchor_cols] if len(fs.anchor_cols) else None
    for cand in items:
        if cand.reason_code in ("pinned", "boosted", "popular", "trending"):
            continue
        anchor = None
        col = loaded.item_index.get(cand.product_id)
        if col is not None and nb_cols is not None:
            hit = nb_cols == col
            best_per_anchor = np.where(hit, nb_scores, 0.0).max(axis=1)
            if best_per_anchor.max(initial=0) > 0:
                anchor = fs.anchor_pks[int(np.argmax(best_per_anchor))]
        if anchor is None and fs.history_pos:
            i = snap.index.get(cand.product_id)
            best = 0.0
            for hp in fs.history_pos:
                p, s = _content_neighbours(state, hp)
                m = np.flatnonzero(p == i)
                if len(m) and s[m[0]] > best:
                    best, anchor = float(s[m[0]]), int(snap.pks[hp])
            if anchor is not None and col is None:
                cand.reason_code = "content_similar"
        _set_reason_text(snap, cand, anchor, col, fs.purchased)


_T_CACHE: dict[tuple[str | None, str], str] = {}


def _t(message: str) -> str:
    """``gettext`` memoised per active language (~40 us a call otherwise, ~15 calls per request)."""
    key = (get_language(), message)
    hit = _T_CACHE.get(key)
    if hit is None:
        hit = _T_CACHE[key] = _(message)
    return hit


def _set_reason_text(
    snap: CatalogSnapshot, cand: Candidate, anchor: int | None, col: int | None, purchased: set[int]
) -> None:
    if anchor is None:
        cand.reason_code = "collaborative" if col is not None else cand.reason_code
        cand.reason_text = _t("Picked for you")
        return
    cand.anchor_product_id = anchor
    title = snap.title_of(anchor)
    if cand.reason_code == "content_similar":
        cand.reason_text = _t("Similar to %(title)s") % {"title": title}
    elif anchor in purchased:
        cand.reason_code = "because_viewed"
        cand.reason_text = _t("Because you bought %(title)s") % {"title": title}
    else:
        cand.reason_code = "because_viewed"
        cand.reason_text = _t("Because you viewed %(title)s") % {"title": title}


def _neighbour_similarity(state: ServingState, pre: precomputed.Precomputed) -> Any:
    """MMR similarity from the neighbour lists (0..1 where j is among i's neighbours), else same
    category (0.5): the pool is small, nothing is computed over the catalog."""
    loaded, snap = state.loaded, state.snap

    def sim(pks: np.ndarray) -> np.ndarray:
        pks = np.asarray(pks, dtype=np.int64)
        cols = np.array([loaded.item_index.get(int(pk), -1) for pk in pks.tolist()], dtype=np.int64)
        out = np.zeros((len(pks), len(pks)), dtype=np.float64)
        known = np.flatnonzero(cols >= 0)
        if len(known):
            nb, sc = pre.item_cols[cols[known]], pre.item_scores[cols[known]]
            for r_i, r in enumerate(known.tolist()):
                hit = np.isin(nb[r_i], cols[known])
                if hit.any():
                    where = {
                        int(c): float(v) for c, v in zip(nb[r_i][hit].tolist(), sc[r_i][hit].tolist(), strict=True)
                    }
                    out[r, known] = [where.get(int(c), 0.0) for c in cols[known].tolist()]
        cats = np.array([snap.category_of(int(pk)) for pk in pks.tolist()])
        same = (cats[:, None] == cats[None, :]) & (cats[:, None] >= 0)
        return np.maximum(out, 0.5 * same)

    return sim


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
        "popular": _t(gettext_noop("Popular in this shop")),
        "trending": _t(gettext_noop("Trending now")),
        "boosted": _t(gettext_noop("Recommended by the shop")),
        "pinned": _t(gettext_noop("Featured by the shop")),
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
    """Record the served list and return its id (generated here, uuid4) for attribution.

    With ``SERVING_LIST_LOG_BATCH`` <= 1 (the default) the row is INSERTed now: one round trip. On
    PostgreSQL in autocommit the INSERT's own transaction commits with ``synchronous_commit = off``
    (``set_config(..., true)``: this statement only), so the request does not wait for the WAL
    flush (0.1-2 ms, up to ~6 ms per request under the benchmark's disk load). The row is visible at
    once (attribution, tests); only a *PostgreSQL server* crash can lose the list rows of its last
    ~0.6 s (3 x ``wal_writer_delay``), never corrupt anything. Inside a transaction the caller's
    commit decides, unchanged. Above 1, rows are buffered in
    the process and written with one multi-row INSERT when the buffer holds that many rows or its
    oldest row is ``SERVING_LIST_LOG_FLUSH_MS`` (1000) old, checked on the next logged request, and
    at process exit (``atexit``). The trade-off: a worker that crashes (SIGKILL, OOM) loses up to a
    batch of list rows, and a row becomes visible to attribution up to the flush interval later.
    """
    list_id = uuid.uuid4()
    if log:
        row = [
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
        ]
        batch = _list_log_batch()
        if batch <= 1:
            # One raw INSERT (no model instance, no signals: RecommendationList has no receivers). Only
            # the quoted table name is interpolated; every value is a parameter. On PostgreSQL, in
            # autocommit, the statement's own transaction commits without waiting for the WAL flush.
            with connection.cursor() as cur:
                cur.execute(_insert_list_sql(async_commit=log_commit_may_skip_wal_wait()), row)
        else:
            _list_log.add(row, batch)
    return str(list_id)


def _list_log_batch() -> int:
    return int(getattr(settings, "SERVING_LIST_LOG_BATCH", os.environ.get("SERVING_LIST_LOG_BATCH", 1)))


class _ListLogBuffer:
    """In-process buffer of RecommendationList rows (see :func:`log_list`)."""

    def __init__(self) -> None:
        self.rows: list[list[Any]] = []
        self.oldest = 0.0
        self.lock = threading.Lock()

    def add(self, row: list[Any], batch: int) -> None:
        now = time.monotonic()
        with self.lock:
            if not self.rows:
                self.oldest = now
            self.rows.append(row)
            max_age = float(getattr(settings, "SERVING_LIST_LOG_FLUSH_MS", 1000)) / 1000.0
            due = len(self.rows) >= batch or now - self.oldest >= max_age
        if due:
            self.flush()

    def flush(self) -> int:
        with self.lock:
            rows, self.rows = self.rows, []
        if not rows:
            return 0
        sql = _insert_list_sql()
        head, values = sql.split(" VALUES ", 1)
        try:
            with connection.cursor() as cur:
                for lo in range(0, len(rows), 500):
                    chunk = rows[lo : lo + 500]
                    cur.execute(f"{head} VALUES " + ", ".join([values] * len(chunk)), [v for r in chunk for v in r])
        except Exception:  # noqa: BLE001 - losing log rows must not fail a served response
            logger.exception("could not write %s buffered recommendation list rows", len(rows))
            return 0
        return len(rows)


_list_log = _ListLogBuffer()


def flush_list_log() -> int:
    """Write the buffered list rows now (tests, shutdown hooks); returns how many were written."""
    return _list_log.flush()


def _flush_at_exit() -> None:
    try:
        _list_log.flush()
    except Exception:  # noqa: BLE001, S110 - nothing left to report to at interpreter exit
        pass


atexit.register(_flush_at_exit)


_INSERT_LIST_SQL: str | None = None
_INSERT_LIST_ASYNC_SQL: str | None = None


def log_commit_may_skip_wal_wait() -> bool:
    """True where a log INSERT may commit without waiting for the WAL flush: PostgreSQL in
    autocommit (the statement is its own transaction; inside a caller's transaction their commit
    decides)."""
    return connection.vendor == "postgresql" and connection.get_autocommit() and not connection.in_atomic_block


def without_wal_wait(insert_sql: str) -> str:
    """Rewrite ``INSERT INTO t (...) VALUES (...) [RETURNING ...]`` so that, run as its own transaction
    on PostgreSQL, it commits with ``synchronous_commit = off`` — this statement only
    (``set_config(..., true)``). Log rows are then visible at once but a *server* crash can lose the
    last ~0.6 s of them; nothing can be corrupted."""
    head, rest = insert_sql.split(" VALUES ", 1)
    values, _, returning = rest.strip().partition(") RETURNING ")
    values = values.strip()
    values = values[1:-1] if values.endswith(")") else values[1:]
    tail = f" RETURNING {returning}" if returning else ""
    prefix = "WITH _async AS (SELECT set_config('synchronous_commit', 'off', true)) "
    return f"{prefix}{head} SELECT {values} FROM _async{tail}"  # noqa: S608 - rewrites our constant SQL; values stay parameters


def _insert_list_sql(async_commit: bool = False) -> str:
    global _INSERT_LIST_SQL, _INSERT_LIST_ASYNC_SQL
    if async_commit:
        if _INSERT_LIST_ASYNC_SQL is None:
            _INSERT_LIST_ASYNC_SQL = without_wal_wait(_insert_list_sql())
        return _INSERT_LIST_ASYNC_SQL
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
        similarity=(
            _neighbour_similarity(state, state.pre)
            if state.pre is not None and state.loaded is not None
            else _diversity_similarity(state)
        ),
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
    pre = _state_precomputed(state, model) if weights else None
    if pre is not None:
        customer_pk = customer.pk
        fs = fast_score(state, pre, customer_pk, weights, activity.recent_products)
        fs.purchased = activity.purchased
        # Seen-but-not-bought items are left out (as filter_already_liked_items does); purchases are
        # the purchased rule's business (repurchasable categories may bring them back).
        exclude_pos = [
            state.snap.index[pk] for pk in weights if pk in state.snap.index and pk not in activity.purchased
        ]
        candidates = _fast_top(state, fs, exclude_pos, max(POOL, 3 * limit))
        candidates += _fill(
            candidates,
            cold_candidates(state, "trending", getattr(customer, "country", "")),
            set(weights) - activity.purchased,
        )
        ranked = apply_rules(store, candidates, customer_id=customer_pk, context=ctx)
        _fast_reasons(state, pre, fs, ranked[offset : offset + n])
        return _finish(
            state,
            "customer",
            ranked,
            offset,
            n,
            placement=placement,
            customer_id=customer_pk,
            algorithm=algorithm,
            log=log,
        )
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
        pre = _state_precomputed(state)
        if pool is None and pre is not None:
            pool = _similar_pool_precomputed(state, pre, pos, col, pool_size)
            state.similar_pools[(product_pk, pool_size)] = pool
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


def _similar_pool_precomputed(
    state: ServingState, pre: precomputed.Precomputed, pos: int, col: int | None, pool_size: int
) -> tuple[list[int], list[float], list[bool]]:
    """``similar_products``' pool from the neighbour lists: collaborative (0..1) + weighted content."""
    content_weight = SIMILAR_CONTENT_WEIGHT if col is not None else 1.0
    cpos, cscore = _content_neighbours(state, pos, max(POOL, pool_size))
    parts = [(cpos, cscore, content_weight)]
    if col is not None:
        parts.append((_to_pos(state, pre.item_cols[col]), pre.item_scores[col], 1.0))
    ids, scores = precomputed.blend(parts)
    content = np.zeros(len(ids), dtype=np.float32)
    if len(cpos):
        content[np.searchsorted(ids, cpos)] = content_weight * cscore
    keep = ids != pos
    ids, scores, content = ids[keep], scores[keep], content[keep]
    order = np.argsort(-scores, kind="stable")[:pool_size]
    collab = scores[order] - content[order]
    if len(state.similar_pools) >= SIMILAR_POOL_CACHE:
        state.similar_pools.pop(next(iter(state.similar_pools)), None)
    return (
        state.snap.pks[ids[order]].tolist(),
        scores[order].astype(np.float64).tolist(),
        (content[order] >= collab).tolist(),
    )


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
