"""The serving hot path: candidates from the active model + live events, store rules, reasons, list log.

Everything per request is numpy over in-memory state. The API's hot path gets the customer and
their latest events from ``live_activity`` (cached per process, one query on a miss), the active
version id from :func:`_active_version_id` (trusted for a few seconds) and writes the list row
through :data:`LIST_LOG` (buffered in production), so a warm request makes no database round trip
(docs/serving.md, "Hot path"). Per store and model version we keep a :class:`ServingState`: the loaded
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

import json
import logging
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
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from threadpoolctl import ThreadpoolController

from shop_recs.platform import logbuffer
from shop_recs.platform.conf import setting
from shop_recs.serving import realtime
from shop_recs.serving.rules import (
    Candidate,
    CatalogSnapshot,
    RankedPositions,
    RuleContext,
    apply_rules,
    catalog_snapshot,
    load_rules,
    rank_positions,
    ranks_by_score_alone,
    rules_for_request,
)
from shop_recs.stores.scoping import store_scope
from shop_recs.training import precompute as precomputed
from shop_recs.training.matrix import DEFAULT_EVENT_WEIGHTS
from shop_recs.training.services import LoadedModel, load_active_model

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


@dataclass(frozen=True)
class SimilarPool:
    """A product's "similar items" before rules, best first (catalog positions; the anchor excluded)."""

    pos: np.ndarray  # int64, unique
    scores: np.ndarray  # float64
    from_content: np.ndarray  # bool: content similarity is the larger part of the score


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
    similar_pools: dict[tuple[int, int], SimilarPool] = field(default_factory=dict)
    #: The model version's precomputed serving arrays (``candidates.py``); ``None``: score on the request.
    pre: precomputed.Precomputed | None = None
    pre_checked_at: float = 0.0
    #: Catalog position -> its top content neighbours (positions, 0..1 scores), filled on demand.
    content_nb: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    #: (kind, country) -> (the score array it was taken from, top ``POOL`` positions, their scores):
    #: the trending/popular lists every fill and cold start reads, ranked once instead of per request.
    cold_tops: dict[tuple[str, str], tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    #: (``col_pos``, ``col_pos`` + a trailing -1) for ``_to_pos``, built on first use.
    col_pos_padded: tuple[np.ndarray, np.ndarray] | None = None

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
        _active_ids.clear()


def _load_precomputed(loaded: LoadedModel | None, retry: bool = False) -> precomputed.Precomputed | None:
    """The version's sidecar arrays (read once per process and version; ``None`` if it has none)."""
    if loaded is None:
        return None
    version = loaded.version
    hit = _precomputed.get(version.pk)
    if hit is not None and hit[0] == version.checksum and (hit[1] is not None or not retry):
        return hit[1]
    from shop_recs.training.services import artifact_path

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
    ttl = float(setting("SERVING_POPULARITY_TTL", 600))
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


#: store id -> (monotonic time read, active ModelVersion id or 0).
_active_ids: dict[int, tuple[float, int]] = {}


def active_version_ttl() -> float:
    """``SERVING_ACTIVE_VERSION_TTL`` (seconds, default 5): how long a process trusts the active version
    id it read. An activation or rollback in this process is seen at once (:func:`forget_active_version`);
    in other processes (other web workers, a Celery worker that trained) within this many seconds."""
    return float(setting("SERVING_ACTIVE_VERSION_TTL", 5.0))


def _active_version_id(store_id: int) -> int:
    """The store's active ModelVersion id (0: none): one indexed lookup at most every TTL seconds."""
    now = time.monotonic()
    hit = _active_ids.get(store_id)
    if hit is not None and now - hit[0] < active_version_ttl():
        return hit[1]
    from shop_recs.training.models import ModelVersion

    table = connection.ops.quote_name(ModelVersion._meta.db_table)
    with connection.cursor() as cur:
        cur.execute(f"SELECT id FROM {table} WHERE store_id = %s AND is_active LIMIT 1", [store_id])  # noqa: S608
        row = cur.fetchone()
    active = int(row[0]) if row else 0
    _active_ids[store_id] = (now, active)
    return active


def note_active_version(store_id: int, active: int) -> None:
    """Record an active version id read together with something else (the customer's activity)."""
    _active_ids[store_id] = (time.monotonic(), int(active))


def forget_active_version(store_id: int | None = None) -> None:
    """Drop the cached active version id (one store, or all): the next request reads it again."""
    if store_id is None:
        _active_ids.clear()
    else:
        _active_ids.pop(store_id, None)


def _model_still_cached(loaded: LoadedModel | None) -> bool:
    from shop_recs.training import services

    return loaded is None or loaded.version.pk in services._cache


def serving_state(store: Store | int) -> ServingState:
    """The store's serving state for its active model and the current catalog snapshot.

    The full ``load_active_model`` (two ORM queries, fallback handling) runs only when the active
    version id (:func:`_active_version_id`, trusted for a few seconds) differs from the one the
    cached state was built for.
    """
    store_id = int(getattr(store, "pk", store))
    snap = catalog_snapshot(store_id)
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


#: History items whose neighbour lists can anchor a reason (the latest known ones).
MAX_ANCHORS = 20
#: ``NEIGHBOUR_DECAY ** rank`` for the neighbour anchors (float32) and the content lists (float64).
_NEIGHBOUR_DECAY64 = realtime.NEIGHBOUR_DECAY ** np.arange(max(realtime.NEIGHBOUR_ANCHORS, 1))
_NEIGHBOUR_DECAY32 = _NEIGHBOUR_DECAY64.astype(np.float32)


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
    #: product pk -> (anchor pk or None, reason code or None to keep the candidate's), filled by
    #: ``_fast_reasons``; the memoised ``FastScored`` carries it from one request to the next.
    anchors: dict[int, tuple[int | None, str | None]] = field(default_factory=dict)


def _to_pos(state: ServingState, cols: np.ndarray) -> np.ndarray:
    """Model columns (-1 padded) -> catalog positions (-1 for padding and products no longer listed)."""
    if not len(state.col_pos):
        return np.full(np.shape(cols), -1, dtype=np.int64)
    padded = state.col_pos_padded
    if padded is None or padded[0] is not state.col_pos:
        # One trailing -1: the padding column -1 then indexes it, so the map is a single lookup.
        padded = state.col_pos_padded = (state.col_pos, np.append(state.col_pos, -1).astype(np.int64))
    return padded[1][cols]


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
    size = len(snap)  # positions are below it: lets ``blend`` sum densely on small catalogs
    history = list(recent) or list(weights)
    item_index = loaded.item_index
    known: list[tuple[int, int]] = []
    for pk in history:
        c = item_index.get(pk)
        if c is not None:
            known.append((pk, c))
            if len(known) == MAX_ANCHORS:
                break
    anchor_cols = np.array([c for _pk, c in known], dtype=np.int64)
    parts: list[tuple[np.ndarray, np.ndarray, float]] = []
    row = loaded.user_index.get(int(customer_pk)) if customer_pk is not None else None
    if row is not None and pre.user_cols[row, 0] < 0:
        row = None  # not precomputed (inactive at training time): served like a customer new since then
    if row is not None:
        parts.append((_to_pos(state, pre.user_cols[row]), np.asarray(pre.user_scores[row]), 1.0))
    elif len(anchor_cols):
        w = np.array([weights.get(pk, 1.0) for pk, _c in known], dtype=np.float32)
        w /= w.max() or 1.0
        ids, sc = precomputed.blend(
            [(_to_pos(state, pre.item_cols[anchor_cols]), pre.item_scores[anchor_cols] * w[:, None], 1.0)], size
        )
        if len(sc) and sc.max() > 0:
            parts.append((ids, sc / sc.max(), 1.0))
    if len(anchor_cols):
        a = anchor_cols[: realtime.NEIGHBOUR_ANCHORS]
        decay = _NEIGHBOUR_DECAY32[: len(a)]
        parts.append((_to_pos(state, pre.item_cols[a]), pre.item_scores[a] * decay[:, None], REALTIME_WEIGHT))
    index = snap.index
    history_pos: list[int] = []
    for pk in history:
        i = index.get(pk)
        if i is not None:
            history_pos.append(i)
            if len(history_pos) == realtime.NEIGHBOUR_ANCHORS:
                break
    if history_pos:
        lists = [_content_neighbours(state, p) for p in history_pos]
        decay = _NEIGHBOUR_DECAY64[: len(lists)]
        ids, sc = precomputed.blend([(p, s, d) for (p, s), d in zip(lists, decay.tolist(), strict=True)], size)
        if len(sc) and sc.max() > 0:
            parts.append((ids, sc / sc.max(), CONTENT_WEIGHT if len(anchor_cols) else 1.0))
    pos, scores = precomputed.blend(parts, size)
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


@dataclass
class _PersonalMemo:
    """A customer's personal candidates for one serving state, kept on their cached activity entry
    (``ServingCustomer.memo``), which ``live_activity`` drops as soon as the customer's activity
    changes; a new model version or catalog snapshot is a new state, so the memo no longer applies.
    The store rules are applied per request on top of it, so rule edits show at once."""

    state_built_at: float  # which serving state (not the object: a memo must not keep an old model alive)
    k: int
    fs: FastScored  # without its full candidate arrays: the reasons need only the anchors
    exclude_pos: list[int]
    pos: np.ndarray
    scores: np.ndarray

    @classmethod
    def keep(
        cls, state: ServingState, k: int, fs: FastScored, exclude_pos: list[int], pos: np.ndarray, scores: np.ndarray
    ) -> _PersonalMemo:
        light = FastScored(_EMPTY_POS, _EMPTY_SCORES, fs.reason, fs.anchor_cols, fs.anchor_pks, fs.history_pos)
        light.purchased = fs.purchased
        return cls(state.built_at, k, light, exclude_pos, pos, scores)


_EMPTY_POS = np.zeros(0, dtype=np.int64)
_EMPTY_SCORES = np.zeros(0, dtype=np.float32)


def _history_marks(state: ServingState, exclude_pos: list[int], personal_pos: np.ndarray) -> np.ndarray:
    """The per-position marks of :func:`_personal_top` (1: excluded history, 2: personal)."""
    mark = np.zeros(len(state.snap), dtype=np.int8)
    if exclude_pos:
        mark[exclude_pos] = 1
    mark[personal_pos] = 2
    return mark


def _personal_top(
    state: ServingState, fs: FastScored, exclude_pos: list[int], k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The top ``k`` personal candidates (seen-but-not-bought left out): positions, float64 scores, and
    a mark per catalog position (1: excluded history, 2: personal) for :func:`_with_trending_fill`."""
    pos, scores = fs.pos, fs.scores
    # One int8 mark per catalog position instead of set tests.
    mark = np.zeros(len(state.snap), dtype=np.int8)
    if exclude_pos and len(pos):
        mark[exclude_pos] = 1
        keep = mark[pos] == 0
        pos, scores = pos[keep], scores[keep]
    order = np.argsort(-scores, kind="stable")[:k]
    personal_pos = pos[order]
    mark[personal_pos] = 2
    return personal_pos, scores[order].astype(np.float64), mark


def _with_trending_fill(
    state: ServingState, personal_pos: np.ndarray, personal_scores: np.ndarray, mark: np.ndarray, country: str
) -> tuple[np.ndarray, np.ndarray]:
    """Personal candidates followed by the trending fill ranked strictly below them (``_fill``'s scores),
    as unique positions and float64 scores."""
    floor = (float(personal_scores.min()) if len(personal_scores) else 0.0) - 1.0
    cold_pos = _cold_top(state, "trending", country)[0]
    cold_mark = mark[cold_pos]
    not_skipped = cold_mark != 1
    cold_pos = cold_pos[not_skipped]
    # Ranks count the cold list after the history skip and before dropping what is already personal
    # (the first occurrence wins in the rules), exactly as ``_fill`` numbers them.
    cold_scores = floor - np.arange(len(cold_pos)) * 1e-3
    fresh = cold_mark[not_skipped] != 2
    return np.concatenate([personal_pos, cold_pos[fresh]]), np.concatenate([personal_scores, cold_scores[fresh]])


def _anchor_rows(pre: precomputed.Precomputed, anchor_cols: np.ndarray, cols: list[int | None]) -> list[int]:
    """For each model column in ``cols`` (``None``: unknown to the model), the index of the anchor whose
    neighbour list scores it highest (the first such anchor on ties), or -1 when no list holds it
    with a positive score.

    One pass over the anchors' lists (a sorted lookup of the page's columns), not one per page item.
    """
    rows = [-1] * len(cols)
    wanted = sorted({col for col in cols if col is not None})
    if not wanted or not len(anchor_cols):
        return rows
    wanted_arr = np.array(wanted, dtype=np.int64)
    nb_cols = pre.item_cols[anchor_cols]
    width = nb_cols.shape[1]
    flat = nb_cols.ravel()
    at = np.searchsorted(wanted_arr, flat)
    np.minimum(at, len(wanted) - 1, out=at)
    match = (wanted_arr[at] == flat).nonzero()[0]
    if not len(match):
        return rows
    # best[w, a]: the highest score of wanted column w in anchor a's list (0 when absent).
    best = np.zeros((len(wanted), len(anchor_cols)), dtype=pre.item_scores.dtype)
    anchor_of = match // width
    np.maximum.at(best, (at[match], anchor_of), pre.item_scores[anchor_cols[anchor_of], match % width])
    found = (best.max(axis=1) > 0).tolist()
    row_of = {col: row for col, row, ok in zip(wanted, best.argmax(axis=1).tolist(), found, strict=True) if ok}
    return [row_of.get(col, -1) if col is not None else -1 for col in cols]


#: Reason codes whose text never depends on the customer's history.
_FIXED_REASONS = frozenset({"pinned", "boosted", "popular", "trending"})


def _fast_reasons(
    state: ServingState,
    pre: precomputed.Precomputed,
    fs: FastScored,
    items: list[Candidate],
    texts: ReasonTexts | None = None,
) -> None:
    """Reasons from the precomputed neighbour lists: the anchor is the history item whose list holds
    the candidate with the highest score; else the history product most content-similar to it."""
    loaded, snap = state.loaded, state.snap
    texts = texts or reason_texts()
    todo = [cand for cand in items if cand.reason_code not in _FIXED_REASONS]
    if not todo:
        return
    item_index, known = loaded.item_index, fs.anchors
    fresh = [cand for cand in todo if cand.product_id not in known]
    if fresh:
        cols = [item_index.get(cand.product_id) for cand in fresh]
        for cand, col, row in zip(fresh, cols, _anchor_rows(pre, fs.anchor_cols, cols), strict=True):
            anchor = fs.anchor_pks[row] if row >= 0 else None
            code = None
            if anchor is None and fs.history_pos:
                i = snap.index.get(cand.product_id)
                best = 0.0
                for hp in fs.history_pos:
                    p, s = _content_neighbours(state, hp)
                    m = np.flatnonzero(p == i)
                    if len(m) and s[m[0]] > best:
                        best, anchor = float(s[m[0]]), int(snap.pks[hp])
                if anchor is not None and col is None:
                    code = "content_similar"
            known[cand.product_id] = (anchor, code)
    for cand in todo:
        anchor, code = known[cand.product_id]
        if code is not None:
            cand.reason_code = code
        _set_reason_text(snap, cand, anchor, item_index.get(cand.product_id), fs.purchased, texts)


@dataclass(frozen=True)
class ReasonTexts:
    """Every reason message in one language: translated once per language and process, and looked up
    once per request (``get_language`` alone costs ~8 us a call)."""

    picked: str
    similar_to: str  # "%(title)s" templates from here on
    bought: str
    viewed: str
    also_liked: str
    simple: dict[str, str]  # reason code -> text, for the codes whose text names no product


_REASON_TEXTS: dict[str | None, ReasonTexts] = {}


def reason_texts() -> ReasonTexts:
    """The reason messages in the active language."""
    language = get_language()
    hit = _REASON_TEXTS.get(language)
    if hit is None:
        hit = _REASON_TEXTS[language] = ReasonTexts(
            picked=_("Picked for you"),
            similar_to=_("Similar to %(title)s"),
            bought=_("Because you bought %(title)s"),
            viewed=_("Because you viewed %(title)s"),
            also_liked=_("Customers who liked %(title)s also liked this"),
            simple={
                "popular": _("Popular in this shop"),
                "trending": _("Trending now"),
                "boosted": _("Recommended by the shop"),
                "pinned": _("Featured by the shop"),
            },
        )
    return hit


def _set_reason_text(
    snap: CatalogSnapshot,
    cand: Candidate,
    anchor: int | None,
    col: int | None,
    purchased: set[int],
    texts: ReasonTexts | None = None,
) -> None:
    texts = texts or reason_texts()
    if anchor is None:
        cand.reason_code = "collaborative" if col is not None else cand.reason_code
        cand.reason_text = texts.picked
        return
    cand.anchor_product_id = anchor
    title = snap.title_of(anchor)
    if cand.reason_code == "content_similar":
        cand.reason_text = texts.similar_to % {"title": title}
    elif anchor in purchased:
        cand.reason_code = "because_viewed"
        cand.reason_text = texts.bought % {"title": title}
    else:
        cand.reason_code = "because_viewed"
        cand.reason_text = texts.viewed % {"title": title}


def _page_candidates(
    snap: CatalogSnapshot,
    ranked: RankedPositions,
    offset: int,
    n: int,
    reason_of: Any,
    texts: ReasonTexts,
) -> list[Candidate]:
    """``Candidate`` objects for the served page only (the rules ranked arrays).

    ``reason_of(src) -> (code, text, anchor pk)`` describes input candidate ``src``; pins and boosts
    then relabel as ``apply_rules`` does.
    """
    end = offset + n
    rows = zip(
        range(offset, end),
        ranked.src[offset:end].tolist(),
        snap.pks[ranked.pos[offset:end]].tolist(),
        ranked.scores[offset:end].tolist(),
        ranked.boosted[offset:end].tolist(),
        strict=False,
    )
    page = []
    for k, src, pk, score, boosted in rows:
        code, text, anchor = reason_of(src) if src >= 0 else ("pinned", "", None)
        if k < ranked.n_pinned:
            code, text = "pinned", texts.simple["pinned"]
        elif boosted and code in ("popular", "trending"):
            code, text = "boosted", texts.simple["boosted"]
        page.append(Candidate(pk, score, code, text, anchor))
    return page


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


def _top_positions(scores: np.ndarray, exclude_pos: list[int], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best finite catalog positions (``exclude_pos`` left out), best first, float64 scores."""
    if exclude_pos:
        scores = scores.copy()
        scores[exclude_pos] = -np.inf
    k = min(k, len(scores))
    if k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    idx = np.argpartition(-scores, k - 1)[:k]
    idx = idx[np.argsort(-scores[idx], kind="stable")]
    idx = idx[np.isfinite(scores[idx])]
    return idx.astype(np.int64), scores[idx].astype(np.float64)


def _top_candidates(state: ServingState, scored: Scored, reason: str, k: int = POOL) -> list[Candidate]:
    idx, scores = _top_positions(scored.scores, scored.exclude_pos, k)
    return [Candidate(pk, sc, reason, "") for pk, sc in zip(state.snap.pks[idx].tolist(), scores.tolist(), strict=True)]


def _cold_top(state: ServingState, kind: str = "trending", country: str = "") -> tuple[np.ndarray, np.ndarray]:
    """The top ``POOL`` trending (per country) or popular positions and scores, ranked once per state."""
    if kind == "trending":
        country = country if country in state.trending_by_country else ""
        scores = state.trending_by_country[country] if country else state.trending
    else:
        country, scores = "", state.popularity
    key = (kind, country)
    hit = state.cold_tops.get(key)
    # The score array is part of the key's check: a state refreshing its tables in place stays right.
    if hit is None or hit[0] is not scores:
        hit = (scores, *_top_positions(scores, [], POOL))
        state.cold_tops[key] = hit
    return hit[1], hit[2]


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


def _fill_simple_reasons(items: list[Candidate], texts: ReasonTexts | None = None) -> None:
    simple = (texts or reason_texts()).simple
    for cand in items:
        if not cand.reason_text and cand.reason_code in simple:
            cand.reason_text = simple[cand.reason_code]


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
    index, skus, bases = snap.index, snap.skus, snap.items
    out = []
    for cand in items:
        # A copy of the snapshot's pre-built {"sku", "title", "price"} (never handed out itself).
        item = dict(bases[index[cand.product_id]])
        item["score"] = round(float(cand.score), 6)
        anchor = cand.anchor_product_id
        at = index.get(int(anchor)) if anchor is not None else None
        item["reason"] = {
            "code": cand.reason_code,
            "text": cand.reason_text,
            "anchor_sku": skus[at] if at is not None else None,
        }
        out.append(item)
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

    The row goes through :data:`LIST_LOG` (``shop_recs.platform.logbuffer``): INSERTed now, or buffered and
    written by the background flusher, per ``SERVING_LOG_BUFFER_ROWS``.
    """
    list_id = uuid.uuid4()
    if log:
        LIST_LOG.write(
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
            ]
        )
    return str(list_id)


def _insert_list_sql() -> str:
    from shop_recs.serving.models import RecommendationList

    table = connection.ops.quote_name(RecommendationList._meta.db_table)
    cast = "::jsonb" if connection.vendor == "postgresql" else ""
    return (
        f"INSERT INTO {table} (store_id, list_id, endpoint, placement, customer_id, model_version_id, "  # noqa: S608
        f"algorithm, variant, anchor_product_id, product_ids, created_at) "
        f"VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s{cast}, %s)"
    )


#: The served-list log (``RecommendationList`` rows); search logs its result pages here too.
LIST_LOG = logbuffer.LogTable("recommendation list", _insert_list_sql)


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
    texts: ReasonTexts | None = None,
) -> ServeResult:
    page = ranked[offset : offset + n]
    if scored is not None:
        _reason_texts(state, scored, page, model=model)
    _fill_simple_reasons(page, texts)
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
    pos, scores = _cold_top(state, kind, country)
    return [Candidate(pk, sc, kind, "") for pk, sc in zip(state.snap.pks[pos].tolist(), scores.tolist(), strict=True)]


def _rank(store: Store, state: ServingState, ctx: RuleContext, pos: np.ndarray, scores: np.ndarray, **kw: Any) -> Any:
    """The store's rules over candidate arrays of this state's snapshot (``rules.rank_positions``)."""
    rules, purchased, excluded = rules_for_request(store, ctx, kw.pop("customer_id", None))
    return rank_positions(state.snap, rules, ctx, pos, scores, purchased=purchased, excluded=excluded, **kw)


#: Served pages kept per cached customer (distinct placements, filters, paging).
MAX_MEMO_PAGES = 8


def _page_key(
    store: Store,
    state: ServingState,
    n: int,
    offset: int,
    placement: str,
    filters: dict[str, Any] | None,
    algorithm: str | None,
) -> tuple | None:
    """Everything a customer's served page depends on besides their activity (the memo lives on the
    activity entry, which the customer's next event drops): the serving state (model version and
    catalog snapshot), the store's rules *value* (an edit makes a new one), the request's paging,
    placement and filters, and the language of the reason texts. ``None`` (no memo) for per-call rule
    overrides (the dashboard preview)."""
    filters = filters or {}
    if filters.get("overrides"):
        return None
    request = tuple(
        sorted(
            (k, frozenset(v) if isinstance(v, set | frozenset | list) else v)
            for k, v in filters.items()
            if v is not None
        )
    )
    return (state.built_at, load_rules(store), n, offset, placement, request, algorithm, get_language())


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
    state = serving_state(store)
    if prefetched:
        activity = customer.activity
    else:
        activity = realtime.recent_activity(state.store_id, customer.pk) if customer is not None else None
    weights = activity.weights() if activity else {}
    limit = offset + n
    ctx = _context(state, limit + 0, filters, purchased=activity.purchased if activity else set())
    country = (getattr(customer, "country", "") if customer else "") or ""
    pre = _state_precomputed(state, model) if weights else None
    if pre is not None:
        # Arrays all the way through the rules; Candidate objects only for the served page.
        page_key = _page_key(store, state, n, offset, placement, filters, algorithm) if prefetched else None
        pages = customer.memo.setdefault("pages", {}) if page_key is not None else None
        if pages is not None and page_key in pages:
            items, page = pages[page_key]
            list_id = log_list(
                state, "customer", page, placement=placement, customer_id=customer.pk, algorithm=algorithm, log=log
            )
            return ServeResult(items, list_id, state.version_id, algorithm or state.algorithm, placement, page)
        texts = reason_texts()
        customer_pk = customer.pk
        k = max(POOL, 3 * limit)
        memo = customer.memo.get("personal") if prefetched else None
        mark = None
        if memo is not None and memo.state_built_at == state.built_at and memo.k == k:
            fs, exclude_pos, personal_pos, personal_scores = memo.fs, memo.exclude_pos, memo.pos, memo.scores
        else:
            fs = fast_score(state, pre, customer_pk, weights, activity.recent_products)
            fs.purchased = activity.purchased
            index = state.snap.index
            # Seen-but-not-bought items are left out (as filter_already_liked_items does); purchases are
            # the purchased rule's business (repurchasable categories may bring them back).
            exclude_pos = [index[pk] for pk in weights if pk in index and pk not in activity.purchased]
            personal_pos, personal_scores, mark = _personal_top(state, fs, exclude_pos, k)
            if prefetched:
                customer.memo["personal"] = _PersonalMemo.keep(state, k, fs, exclude_pos, personal_pos, personal_scores)
        n_personal = len(personal_pos)
        rules, purchased, excluded = rules_for_request(store, ctx, customer_pk)
        # Both candidate lists come best first (the fill strictly below the personal ones, descending).
        rank_kw = {"purchased": purchased, "excluded": excluded, "unique": True, "in_catalog": True, "presorted": True}
        ranked = None
        if ranks_by_score_alone(state.snap, rules, ctx):
            # The trending fill scores below every personal candidate, so when ``limit`` personal
            # ones pass the rules (and nothing but the score orders them) it cannot reach the page.
            ranked = rank_positions(state.snap, rules, ctx, personal_pos, personal_scores, **rank_kw)
            if len(ranked) < limit:
                ranked = None
        if ranked is None:
            if mark is None:
                mark = _history_marks(state, exclude_pos, personal_pos)
            pos, scores = _with_trending_fill(state, personal_pos, personal_scores, mark, country)
            ranked = rank_positions(state.snap, rules, ctx, pos, scores, **rank_kw)
        personal, trending = (fs.reason, "", None), ("trending", "", None)
        page = _page_candidates(
            state.snap, ranked, offset, n, lambda src: personal if src < n_personal else trending, texts
        )
        _fast_reasons(state, pre, fs, page, texts)
        result = _finish(
            state,
            "customer",
            page,
            0,
            n,
            placement=placement,
            customer_id=customer_pk,
            algorithm=algorithm,
            log=log,
            texts=texts,
        )
        if pages is not None:
            if len(pages) >= MAX_MEMO_PAGES:
                pages.clear()
            pages[page_key] = (result.items, result.candidates)
        return result
    if not weights:
        # No history: the (country's) trending list, ranked once per state; nothing to score.
        texts = reason_texts()
        pos, scores = _cold_top(state, "trending", country)
        ranked = _rank(
            store,
            state,
            ctx,
            pos,
            scores,
            customer_id=getattr(customer, "pk", None),
            unique=True,
            in_catalog=True,
            presorted=True,
        )
        cold = ("trending", "", None)
        page = _page_candidates(state.snap, ranked, offset, n, lambda src: cold, texts)
        return _finish(
            state,
            "customer",
            page,
            0,
            n,
            placement=placement,
            customer_id=getattr(customer, "pk", None),
            algorithm="trending",
            log=log,
            texts=texts,
        )
    with _blas_limit_ctx():
        scored = score_history(state, weights, activity.recent_products, model=model)
        scored.purchased = activity.purchased
        # Seen-but-not-bought items are left out (as filter_already_liked_items does); purchases are
        # the purchased rule's business (repurchasable categories may bring them back).
        scored.exclude_pos = [
            state.snap.index[pk] for pk in weights if pk in state.snap.index and pk not in activity.purchased
        ]
        candidates = _top_candidates(state, scored, scored.reason, k=max(POOL, 3 * limit))
        # Thin or exotic histories: fill with trending so a page is never short.
        candidates += _fill(candidates, cold_candidates(state, "trending", country), set(weights) - activity.purchased)
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
    snap = state.snap
    pos = snap.index[product_pk]
    pool_size = max(POOL, 3 * n)
    pool = state.similar_pools.get((product_pk, pool_size))
    pre = _state_precomputed(state)
    if pool is None:
        pool = _similar_pool(state, pre, product_pk, pos, pool_size)
        if len(state.similar_pools) >= SIMILAR_POOL_CACHE:
            state.similar_pools.pop(next(iter(state.similar_pools)), None)
        state.similar_pools[(product_pk, pool_size)] = pool
    texts = reason_texts()
    title = snap.titles[pos]
    # Both texts once per request, not per candidate.
    from_content = (
        "content_similar",
        texts.similar_to % {"title": title},
        product_pk,
    )
    from_collab = (
        "collaborative",
        texts.also_liked % {"title": title},
        product_pk,
    )
    ctx = _context(state, n, None, purchased=set(), insert_pinned=False, exclude=[product_pk])
    ranked = _rank(store, state, ctx, pool.pos, pool.scores, unique=True, in_catalog=True, presorted=True)
    content_flags = pool.from_content
    page = _page_candidates(snap, ranked, 0, n, lambda src: from_content if content_flags[src] else from_collab, texts)
    return _finish(
        state, "similar", page, 0, n, placement=placement, anchor_product_id=product_pk, log=log, texts=texts
    )


def _similar_pool(
    state: ServingState, pre: precomputed.Precomputed | None, product_pk: int, pos: int, pool_size: int
) -> SimilarPool:
    """``similar_products``' pool before rules: from the neighbour lists, else by scoring the catalog."""
    snap, loaded = state.snap, state.loaded
    col = loaded.column_of(product_pk) if loaded else None
    if pre is not None:
        return _similar_pool_precomputed(state, pre, pos, col, pool_size)
    with _blas_limit_ctx():
        content = realtime.minmax(snap.content_similar([pos]))
        collab = np.zeros(len(snap), dtype=np.float32)
        if col is not None:
            collab = _scatter(state, realtime.minmax(_cached_similar_rows(state, loaded.model, [col])[0]))
    content_weight = SIMILAR_CONTENT_WEIGHT if col is not None else 1.0
    scores = collab + content_weight * content
    scores[pos] = -np.inf
    idx, top = _top_positions(scores, [], pool_size)
    return SimilarPool(idx, top, content_weight * content[idx] >= collab[idx])


def _similar_pool_precomputed(
    state: ServingState, pre: precomputed.Precomputed, pos: int, col: int | None, pool_size: int
) -> SimilarPool:
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
    return SimilarPool(ids[order].astype(np.int64), scores[order].astype(np.float64), content[order] >= collab)


def frequently_bought_together(
    store: Store, product_pk: int, *, n: int = 5, placement: str = "", log: bool = True
) -> ServeResult:
    from shop_recs.serving.fbt import fbt_table

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
