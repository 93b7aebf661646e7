"""The one registry of per-store serving state in this process.

Per store we keep a :class:`ServingState` built for the store's active model version and its current
catalog snapshot (``snapshot.catalog_snapshot``, whose fingerprint decides when it is rebuilt): the
loaded model, the model-column -> catalog-position maps and the popularity / trending arrays. Next to
it: the popularity query's rows per (store, version) (``SERVING_POPULARITY_TTL``), the model version's
precomputed serving arrays (``training.precompute``) and the active version id per store, trusted for
``SERVING_ACTIVE_VERSION_TTL`` seconds (:func:`active_version_id`), so a warm request makes no
database round trip.

:func:`invalidate` drops all of it (for one store, or every store); it is registered as the
``serving.runtime`` process cache (``shop_recs.platform.cache``).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.db.models import Case, Count, F, FloatField, Max, Sum, Value, When
from django.db.models.functions import TruncDate

from shop_recs.activity.models import Event
from shop_recs.platform import metrics
from shop_recs.platform.cache import register_process_cache
from shop_recs.serving import sql as serving_sql
from shop_recs.serving.snapshot import DB_UNREACHABLE, OUTAGE_RETRY_SECONDS, CatalogSnapshot, catalog_snapshot
from shop_recs.stores.models import Store
from shop_recs.stores.scoping import store_scope
from shop_recs.training import artifacts as training_artifacts
from shop_recs.training import precompute as precomputed
from shop_recs.training.artifacts import LoadedModel, artifact_path, load_active_model
from shop_recs.training.matrix import DEFAULT_EVENT_WEIGHTS

logger = logging.getLogger(__name__)

#: Trending: events of the last ``TRENDING_DAYS`` before the store's newest event, half-life in days.
TRENDING_DAYS = 30
TRENDING_HALF_LIFE_DAYS = 7.0
#: A country needs this many trending events before it gets its own trending list.
COUNTRY_MIN_EVENTS = 5


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
    #: The active ModelVersion id this state was built for (0: none), from ``active_version_id``.
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
    #: (``col_pos``, ``col_pos`` + a trailing -1) for ``to_pos``, built on first use.
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


def _load_precomputed(loaded: LoadedModel | None, retry: bool = False) -> precomputed.Precomputed | None:
    """The version's sidecar arrays (read once per process and version; ``None`` if it has none)."""
    if loaded is None:
        return None
    version = loaded.version
    hit = _precomputed.get(version.pk)
    if hit is not None and hit[0] == version.checksum and (hit[1] is not None or not retry):
        return hit[1]
    pre = precomputed.load_sidecar(artifact_path(version), version.checksum, len(loaded.user_ids), len(loaded.item_ids))
    with _lock:
        for key in [k for k in _precomputed if k != version.pk and k not in _live_versions()]:
            _precomputed.pop(key, None)
        _precomputed[version.pk] = (version.checksum, pre)
    return pre


def _live_versions() -> set[int]:
    return {s.version_id for s in _states.values() if s.version_id is not None}


def state_precomputed(state: ServingState, model: Any = None) -> precomputed.Precomputed | None:
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
    ttl = float(settings.SERVING_POPULARITY_TTL)
    if hit is not None and time.monotonic() - hit[0] < ttl:
        pop_pk, trend_rows = hit[1]
    else:
        pop_pk, trend_rows = _fresh_popularity_rows(store_id, key, hit, ttl)
    return _popularity_arrays(snap, pop_pk, trend_rows)


def _fresh_popularity_rows(store_id: int, key: tuple[int, int | None], hit: tuple | None, ttl: float) -> tuple:
    """Re-read the popularity rows; while the database is unreachable, keep the expired ones."""
    try:
        return _read_popularity_rows(store_id, key)
    except DB_UNREACHABLE:
        if hit is None:
            raise
        with _lock:
            _tables[key] = (time.monotonic() - ttl + OUTAGE_RETRY_SECONDS, hit[1])
        logger.warning("database unreachable: store %s's popularity lists served as they were", store_id)
        return hit[1]


def _read_popularity_rows(store_id: int, key: tuple[int, int | None]) -> tuple:
    """The popularity query's rows (product -> distinct customers; trending day buckets), cached."""
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
    return pop_pk, trend_rows


def _popularity_arrays(snap: CatalogSnapshot, pop_pk: dict, trend_rows: list) -> tuple:
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
    return float(settings.SERVING_ACTIVE_VERSION_TTL)


def active_version_id(store_id: int) -> int:
    """The store's active ModelVersion id (0: none): one indexed lookup at most every TTL seconds."""
    now = time.monotonic()
    hit = _active_ids.get(store_id)
    ttl = active_version_ttl()
    if hit is not None and now - hit[0] < ttl:
        metrics.cache_lookup("active_version", True)
        return hit[1]
    metrics.cache_lookup("active_version", False)
    try:
        active = serving_sql.active_version_id(store_id)
    except DB_UNREACHABLE:
        if hit is None:
            raise
        # Nothing can be activated while the database is down: the id we have is still the truth.
        _active_ids[store_id] = (now - ttl + OUTAGE_RETRY_SECONDS, hit[1])
        logger.warning("database unreachable: store %s keeps active model version %s", store_id, hit[1])
        return hit[1]
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
    return loaded is None or training_artifacts.is_loaded(loaded.version.pk)


def serving_state(store: Store | int) -> ServingState:
    """The store's serving state for its active model and the current catalog snapshot.

    The full ``load_active_model`` (two ORM queries, fallback handling) runs only when the active
    version id (:func:`active_version_id`, trusted for a few seconds) differs from the one the
    cached state was built for.
    """
    store_id = int(getattr(store, "pk", store))
    snap = catalog_snapshot(store_id)
    active_id = active_version_id(store_id)
    state = _states.get(store_id)
    if (
        state is not None
        and state.snap is snap
        and state.active_seen == active_id
        and _model_still_cached(state.loaded)
    ):
        return state
    store_obj = store if isinstance(store, Store) else Store.objects.get(pk=store_id)
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


def invalidate(store_id: int | None = None) -> None:
    """Drop everything this registry holds for ``store_id`` (``None``: every store): serving states,
    popularity rows, active version ids and the precomputed arrays no remaining state uses."""
    with _lock:
        if store_id is None:
            _states.clear()
            _tables.clear()
            _precomputed.clear()
            _active_ids.clear()
            return
        store_id = int(store_id)
        _states.pop(store_id, None)
        for key in [k for k in _tables if k[0] == store_id]:
            _tables.pop(key, None)
        _active_ids.pop(store_id, None)
        live = _live_versions()
        for key in [k for k in _precomputed if k not in live]:
            _precomputed.pop(key, None)


register_process_cache("serving.runtime", invalidate)
