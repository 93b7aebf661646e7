"""Scoring for the serving hot path: numpy over a store's :class:`~shop_recs.serving.runtime.ServingState`.

Two ways to score a customer's history:

* :func:`score_history` scores the whole catalog with the model (fold-in), item-item neighbours of
  the latest events (real time) and content similarity; used for versions without precomputed
  arrays, or when a caller passes its own ``model`` (an experiment variant);
* :func:`fast_score` blends the version's precomputed lists (``training.precompute``: each customer's
  top candidates and each item's top neighbours) over a few hundred candidates instead.

Plus the helpers both paths and the endpoints share: model columns -> catalog positions, cached
similarity rows, top-k selection, the cold (trending/popular) lists, MMR similarity functions and
the BLAS thread limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings
from threadpoolctl import ThreadpoolController

from shop_recs.serving import realtime
from shop_recs.serving.rules import Candidate
from shop_recs.serving.runtime import ServingState, state_precomputed
from shop_recs.training import precompute as precomputed

#: Weight of the neighbours of the latest events, relative to the (0..1 scaled) model scores.
REALTIME_WEIGHT = 0.6

#: Weight of catalog content similarity in customer/session recs (reaches products the model lacks).
CONTENT_WEIGHT = 0.25

#: Weight of content similarity in "similar items" when the model knows the product.
SIMILAR_CONTENT_WEIGHT = 0.5

#: Candidates scored before rules (rules drop some; MMR needs a pool).
POOL = 100

#: "Similar items" pools kept per store state (~2.5 KB each; the state is rebuilt with the catalog/model).
SIMILAR_POOL_CACHE = 20_000


_controller: Any = None


def scatter(state: ServingState, model_scores: np.ndarray) -> np.ndarray:
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


def cached_similar_rows(state: ServingState, model: Any, cols: list[int]) -> np.ndarray:
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
        budget = max(1, int(float(settings.SERVING_SIMILARITY_CACHE_MB) * 2**20 / (4 * n_items)))
        for c, row in zip(missing, rows, strict=True):
            while len(cache) >= budget:
                cache.pop(next(iter(cache)), None)
            cache[c] = row.copy()
    out = np.stack([cache[c] for c in cols])
    out[np.arange(len(cols)), cols] = 0.0
    return out


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
            total += scatter(state, realtime.minmax(model_scores))
            cols = [loaded.column_of(pk) for pk in known_recent]
            out.sim_rows = cached_similar_rows(state, model, cols)
            out.sim_pks = known_recent
            total += REALTIME_WEIGHT * scatter(state, realtime.neighbour_scores(out.sim_rows))
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
    #: ``fast_reasons``; the memoised ``FastScored`` carries it from one request to the next.
    anchors: dict[int, tuple[int | None, str | None]] = field(default_factory=dict)


def to_pos(state: ServingState, cols: np.ndarray) -> np.ndarray:
    """Model columns (-1 padded) -> catalog positions (-1 for padding and products no longer listed)."""
    if not len(state.col_pos):
        return np.full(np.shape(cols), -1, dtype=np.int64)
    padded = state.col_pos_padded
    if padded is None or padded[0] is not state.col_pos:
        # One trailing -1: the padding column -1 then indexes it, so the map is a single lookup.
        padded = state.col_pos_padded = (state.col_pos, np.append(state.col_pos, -1).astype(np.int64))
    return padded[1][cols]


def content_neighbours(state: ServingState, pos: int, k: int = POOL) -> tuple[np.ndarray, np.ndarray]:
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
        parts.append((to_pos(state, pre.user_cols[row]), np.asarray(pre.user_scores[row]), 1.0))
    elif len(anchor_cols):
        w = np.array([weights.get(pk, 1.0) for pk, _c in known], dtype=np.float32)
        w /= w.max() or 1.0
        ids, sc = precomputed.blend(
            [(to_pos(state, pre.item_cols[anchor_cols]), pre.item_scores[anchor_cols] * w[:, None], 1.0)], size
        )
        if len(sc) and sc.max() > 0:
            parts.append((ids, sc / sc.max(), 1.0))
    if len(anchor_cols):
        a = anchor_cols[: realtime.NEIGHBOUR_ANCHORS]
        decay = _NEIGHBOUR_DECAY32[: len(a)]
        parts.append((to_pos(state, pre.item_cols[a]), pre.item_scores[a] * decay[:, None], REALTIME_WEIGHT))
    index = snap.index
    history_pos: list[int] = []
    for pk in history:
        i = index.get(pk)
        if i is not None:
            history_pos.append(i)
            if len(history_pos) == realtime.NEIGHBOUR_ANCHORS:
                break
    if history_pos:
        lists = [content_neighbours(state, p) for p in history_pos]
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
    pre = state_precomputed(state)
    if pre is None or not weights:
        return None
    fs = fast_score(state, pre, customer_pk, weights, recent)
    top = float(fs.scores.max()) if len(fs.scores) else 0.0
    if top <= 0:
        return {}
    return dict(zip(state.snap.pks[fs.pos].tolist(), (fs.scores / top).tolist(), strict=True))


class PersonalMemo:
    """A customer's personal candidates for one serving state, kept on their cached activity entry
    (``ServingCustomer.memo``), which ``live_activity`` drops as soon as the customer's activity
    changes; a new model version or catalog snapshot is a new state, so the memo no longer applies.
    The store rules are applied per request on top of it, so rule edits show at once.

    Compact on purpose: one int32 array holds every number (20,000 cached customers per worker
    each keep one): ``[positions (n), scores (n, float32 bits), excluded history positions, anchor
    model columns, history positions, anchor pks]``, the lengths in slots. The scores are
    ``fast_score``'s float32 blend (``personal_top`` only widens them to float64), so float32 holds
    them exactly; other scores are checked, and kept in float64 (``_f64``) unless they round-trip;
    anchor pks beyond int32 are kept apart (``_pks``). Python lists and int64/float64 arrays took ~3.5 KB per
    customer, this ~1.3 KB (benchmarks/serve.py ``--memory``).
    """

    __slots__ = (
        "state_built_at",
        "k",
        "reason",
        "purchased",
        "_ints",
        "_n",
        "_n_exclude",
        "_n_anchors",
        "_n_history",
        "_f64",
        "_pks",
        "_anchors",
    )

    def __init__(
        self,
        state_built_at: float,
        k: int,
        fs: FastScored,
        exclude_pos: Sequence[int] | np.ndarray,
        pos: np.ndarray,
        scores: np.ndarray,
    ) -> None:
        self.state_built_at = state_built_at  # which serving state (not the object: it would keep an old model alive)
        self.k = k
        self.reason = fs.reason
        self.purchased = fs.purchased  # the activity's own set: shared, not copied
        n, n_exclude, n_anchors, n_history = len(pos), len(exclude_pos), len(fs.anchor_cols), len(fs.history_pos)
        self._n, self._n_exclude, self._n_anchors, self._n_history = n, n_exclude, n_anchors, n_history
        pks = fs.anchor_pks
        narrow = not pks or (max(pks) <= _INT32_MAX and min(pks) >= -_INT32_MAX)
        self._pks: np.ndarray | None = None if narrow else np.array(pks, dtype=np.int64)
        ints = np.empty(2 * n + n_exclude + n_anchors + n_history + (n_anchors if narrow else 0), dtype=np.int32)
        ints[:n] = pos
        scores32 = ints[n : 2 * n].view(np.float32)
        scores32[:] = scores
        # ``personal_top`` takes the scores from ``fs.scores``: float32 there means exact here.
        exact = fs.scores.dtype == np.float32 or bool((scores32 == scores).all())
        self._f64: np.ndarray | None = None if exact else np.asarray(scores, dtype=np.float64)
        at = 2 * n
        ints[at : at + n_exclude] = exclude_pos
        at += n_exclude
        ints[at : at + n_anchors] = fs.anchor_cols
        at += n_anchors
        ints[at : at + n_history] = fs.history_pos
        if narrow:
            ints[at + n_history :] = pks
        self._ints: np.ndarray = ints
        #: ``fast_reasons``' findings (product pk -> anchor pk, reason code), as rows of (pk, anchor pk
        #: or -1, index in ``_ANCHOR_CODES``); ``None`` until a request on this memo found some.
        self._anchors: np.ndarray | None = None

    @classmethod
    def keep(
        cls,
        state: ServingState,
        k: int,
        fs: FastScored,
        exclude_pos: Sequence[int] | np.ndarray,
        pos: np.ndarray,
        scores: np.ndarray,
    ) -> PersonalMemo:
        return cls(state.built_at, k, fs, exclude_pos, pos, scores)

    def applies(self, state: ServingState, k: int) -> bool:
        return self.state_built_at == state.built_at and self.k == k

    def candidates(self) -> tuple[np.ndarray, np.ndarray]:
        """The top ``k`` personal candidates as ``personal_top`` returned them: int64 positions and
        float64 scores (the same values, bit for bit)."""
        n = self._n
        pos = self._ints[:n].astype(np.int64)
        if self._f64 is not None:
            return pos, self._f64
        return pos, self._ints[n : 2 * n].view(np.float32).astype(np.float64)

    def exclude_pos(self) -> np.ndarray:
        """The excluded (seen, not bought) history positions, int32 (a view: do not modify)."""
        return self._ints[2 * self._n : 2 * self._n + self._n_exclude]

    def fast_scored(self) -> FastScored:
        """What ``fast_reasons`` needs (no candidate arrays): anchors, history, purchases and what
        earlier requests on this memo found (``anchors``; :meth:`note_anchors` keeps new findings)."""
        at = 2 * self._n + self._n_exclude
        n_anchors, n_history = self._n_anchors, self._n_history
        anchor_cols = self._ints[at : at + n_anchors]
        history_pos = self._ints[at + n_anchors : at + n_anchors + n_history].tolist()
        pks = self._pks if self._pks is not None else self._ints[at + n_anchors + n_history :]
        fs = FastScored(_EMPTY_POS, _EMPTY_SCORES, self.reason, anchor_cols, pks.tolist(), history_pos)
        fs.purchased = self.purchased
        if self._anchors is not None:
            fs.anchors = {
                pk: (anchor if anchor >= 0 else None, _ANCHOR_CODES[code])
                for pk, anchor, code in self._anchors.tolist()
            }
        return fs

    def note_anchors(self, fs: FastScored) -> None:
        """Keep what ``fast_reasons`` found on ``fs`` (from :meth:`fast_scored`) for later requests."""
        known = 0 if self._anchors is None else len(self._anchors)
        if len(fs.anchors) <= known:
            return
        rows = [
            (pk, -1 if anchor is None else anchor, _ANCHOR_CODES.index(code))
            for pk, (anchor, code) in fs.anchors.items()
            if code in _ANCHOR_CODES
        ]
        self._anchors = np.array(rows, dtype=np.int64).reshape(-1, 3)


#: The reason codes ``fast_reasons`` records per product (``None``: keep the candidate's own).
_ANCHOR_CODES: tuple[str | None, ...] = (None, "content_similar")

_INT32_MAX = np.iinfo(np.int32).max


_EMPTY_POS = np.zeros(0, dtype=np.int64)

_EMPTY_SCORES = np.zeros(0, dtype=np.float32)


def history_marks(state: ServingState, exclude_pos: Sequence[int] | np.ndarray, personal_pos: np.ndarray) -> np.ndarray:
    """The per-position marks of :func:`personal_top` (1: excluded history, 2: personal)."""
    mark = np.zeros(len(state.snap), dtype=np.int8)
    if len(exclude_pos):
        mark[exclude_pos] = 1
    mark[personal_pos] = 2
    return mark


def personal_top(
    state: ServingState, fs: FastScored, exclude_pos: Sequence[int] | np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The top ``k`` personal candidates (seen-but-not-bought left out): positions, float64 scores, and
    a mark per catalog position (1: excluded history, 2: personal) for :func:`with_trending_fill`."""
    pos, scores = fs.pos, fs.scores
    # One int8 mark per catalog position instead of set tests.
    mark = np.zeros(len(state.snap), dtype=np.int8)
    if len(exclude_pos) and len(pos):
        mark[exclude_pos] = 1
        keep = mark[pos] == 0
        pos, scores = pos[keep], scores[keep]
    order = np.argsort(-scores, kind="stable")[:k]
    personal_pos = pos[order]
    mark[personal_pos] = 2
    return personal_pos, scores[order].astype(np.float64), mark


def with_trending_fill(
    state: ServingState, personal_pos: np.ndarray, personal_scores: np.ndarray, mark: np.ndarray, country: str
) -> tuple[np.ndarray, np.ndarray]:
    """Personal candidates followed by the trending fill ranked strictly below them (``_fill``'s scores),
    as unique positions and float64 scores."""
    floor = (float(personal_scores.min()) if len(personal_scores) else 0.0) - 1.0
    cold_pos = cold_top(state, "trending", country)[0]
    cold_mark = mark[cold_pos]
    not_skipped = cold_mark != 1
    cold_pos = cold_pos[not_skipped]
    # Ranks count the cold list after the history skip and before dropping what is already personal
    # (the first occurrence wins in the rules), exactly as ``_fill`` numbers them.
    cold_scores = floor - np.arange(len(cold_pos)) * 1e-3
    fresh = cold_mark[not_skipped] != 2
    return np.concatenate([personal_pos, cold_pos[fresh]]), np.concatenate([personal_scores, cold_scores[fresh]])


def anchor_rows(pre: precomputed.Precomputed, anchor_cols: np.ndarray, cols: list[int | None]) -> list[int]:
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


def neighbour_similarity(state: ServingState, pre: precomputed.Precomputed) -> Any:
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


def diversity_similarity(state: ServingState) -> Any:
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
            rows = cached_similar_rows(state, loaded.model, cols[known].tolist())
            block = rows[:, cols[known]]
            for r_i, r in enumerate(known):
                out[r, known] = realtime.minmax(block[r_i])
        cats = np.array([snap.category_of(int(pk)) for pk in pks])
        same = (cats[:, None] == cats[None, :]) & (cats[:, None] >= 0)
        return np.maximum(out, 0.5 * same)

    return sim


def top_positions(scores: np.ndarray, exclude_pos: list[int], k: int) -> tuple[np.ndarray, np.ndarray]:
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


def top_candidates(state: ServingState, scored: Scored, reason: str, k: int = POOL) -> list[Candidate]:
    idx, scores = top_positions(scored.scores, scored.exclude_pos, k)
    return [Candidate(pk, sc, reason, "") for pk, sc in zip(state.snap.pks[idx].tolist(), scores.tolist(), strict=True)]


def cold_top(state: ServingState, kind: str = "trending", country: str = "") -> tuple[np.ndarray, np.ndarray]:
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
        hit = (scores, *top_positions(scores, [], POOL))
        state.cold_tops[key] = hit
    return hit[1], hit[2]


def cold_candidates(state: ServingState, kind: str = "trending", country: str = "") -> list[Candidate]:
    pos, scores = cold_top(state, kind, country)
    return [Candidate(pk, sc, kind, "") for pk, sc in zip(state.snap.pks[pos].tolist(), scores.tolist(), strict=True)]


class blas_limit_ctx:  # noqa: N801 - used like a function
    """BLAS at ``SERVING_BLAS_THREADS`` (1) for the scoring, restored afterwards."""

    def __enter__(self) -> None:
        global _controller
        if _controller is None:
            _controller = ThreadpoolController()  # scanning the loaded libraries is the slow part: once
        self._ctl = _controller.limit(limits=int(settings.SERVING_BLAS_THREADS), user_api="blas")
        self._ctl.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._ctl.__exit__(*exc)
