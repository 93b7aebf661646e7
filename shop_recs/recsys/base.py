"""The contract every recommender in the engine follows (modelled on implicit and scikit-learn).

* ``__init__`` stores hyperparameters only; ``get_params()`` returns them.
* ``fit(user_items: csr_matrix, *, item_features=None, item_categories=None, timestamps=None) -> self``.
  Learned attributes end in ``_``.
* ``score_users(user_ids, user_items) -> ndarray (len(user_ids), n_items)``: raw scores for a batch.
* ``recommend(user_ids, user_items, N, filter_already_liked_items=True, items=None)`` returns
  ``(ids, scores)``: 1-D arrays for one user id, 2-D ``(n_users, N)`` arrays for an array of ids.
  Rows are padded with id ``-1`` and score ``-inf`` where fewer than ``N`` items qualify.
* ``similar_items(item_ids, N)`` returns ``(ids, scores)`` in the same shapes, excluding the item.
* One user id goes through ``_score_one(user_id, items, values)`` when a model implements it: the
  same scores as ``score_users`` from the raw arrays of the user's CSR row, without scipy's
  per-call overhead (docs/benchmarks_recsys_speed.md, run 3).
* ``save(path)`` / ``load(path)`` go through ``np.savez`` and ``np.load(allow_pickle=False)``.

The engine sees only integer indices; mapping database ids to rows belongs to the Django side.
Nothing under ``shop_recs.recsys`` may import Django (a test enforces it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

NEG_INF = np.float32(-np.inf)


def as_csr(matrix: Any) -> sp.csr_matrix:
    """Coerce to float32 CSR with sorted indices, the layout every algorithm expects."""
    csr = sp.csr_matrix(matrix, dtype=np.float32)
    csr.sort_indices()
    return csr


INPUT_SCALINGS = ("raw", "binary", "log")


def scale_values(matrix: sp.csr_matrix, scaling: str) -> sp.csr_matrix:
    """Rescale interaction strengths before a model sees them.

    ``binary`` (1 for any interaction) is the default of the neighbourhood and linear models: summed
    purchase counts (up to 64 per cell on UCI Online Retail) let a few bulk buyers dominate the
    item-item statistics, and on that data binarising lifts EASE's NDCG@10 from 0.086 to 0.101.
    ``log`` (``log1p``) keeps some of the strength; ``raw`` keeps the values as given.
    """
    if scaling == "raw":
        return matrix
    if scaling not in INPUT_SCALINGS:
        raise ValueError(f"input_scaling must be one of {', '.join(INPUT_SCALINGS)}; got {scaling!r}")
    out = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    out.data = np.ones_like(out.data) if scaling == "binary" else np.log1p(np.maximum(out.data, 0))
    return out


def scale_row_values(values: np.ndarray, scaling: str) -> np.ndarray:
    """:func:`scale_values` on one row's stored values (explicit zeros included, as there)."""
    if scaling == "raw":
        return values
    if scaling not in INPUT_SCALINGS:
        raise ValueError(f"input_scaling must be one of {', '.join(INPUT_SCALINGS)}; got {scaling!r}")
    return np.ones_like(values) if scaling == "binary" else np.log1p(np.maximum(values, 0))


def top_n(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Top ``n`` columns of each row of a 2-D score array, best first; ``-inf`` pads with id -1."""
    n_rows, n_cols = scores.shape
    k = min(n, n_cols)
    if k <= 0:
        return np.full((n_rows, n), -1, dtype=np.int64), np.full((n_rows, n), NEG_INF, dtype=np.float32)
    if k < n_cols:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.tile(np.arange(n_cols), (n_rows, 1))
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    ids = np.take_along_axis(part, order, axis=1).astype(np.int64)
    top = np.take_along_axis(part_scores, order, axis=1).astype(np.float32)
    ids[~np.isfinite(top)] = -1
    if k < n:
        ids = np.hstack([ids, np.full((n_rows, n - k), -1, dtype=np.int64)])
        top = np.hstack([top, np.full((n_rows, n - k), NEG_INF, dtype=np.float32)])
    return ids, top


def top_n_1d(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`top_n` for one 1-D score vector (same selection and ordering, without 2-D indexing)."""
    n_cols = scores.shape[0]
    k = min(n, n_cols)
    ids = np.full(n, -1, dtype=np.int64)
    top = np.full(n, NEG_INF, dtype=np.float32)
    if k <= 0:
        return ids, top
    part = np.argpartition(-scores, k - 1)[:k] if k < n_cols else np.arange(n_cols)
    part_scores = scores[part]
    order = np.argsort(-part_scores, kind="stable")
    ids[:k] = part[order]
    top[:k] = part_scores[order]
    ids[~np.isfinite(top)] = -1
    return ids, top


def one_row(user_items: Any, user_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Item indices and float32 values of one user's row, given that row (1 x n_items) or the full
    matrix (the row ``user_id`` is picked, as in ``recommend``). A CSR row is read in place."""
    if not (sp.issparse(user_items) and user_items.format == "csr" and user_items.dtype == np.float32):
        user_items = as_csr(user_items)
    n_rows = user_items.shape[0]
    row = 0 if n_rows == 1 else user_id
    if not -n_rows <= row < n_rows:
        raise IndexError(f"user {user_id} is out of range for a user_items matrix with {n_rows} rows")
    row %= n_rows  # a negative id counts from the end, as ``rows[ids]`` does on the batch path
    start, end = user_items.indptr[row], user_items.indptr[row + 1]
    return user_items.indices[start:end].astype(np.int64), user_items.data[start:end]


#: up to this many rows, ``gather_rows`` concatenates slices (one copy) instead of building an
#: index array over every gathered entry (four passes); both give the same order
_SLICE_GATHER_ROWS = 512


def gather_rows(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, rows: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Column indices and values of the CSR rows ``rows`` concatenated in order, each row's values
    multiplied by its weight: the raw material of ``weights @ matrix[rows]`` without scipy."""
    starts = indptr[rows]
    lengths = indptr[rows + 1] - starts
    if len(rows) <= _SLICE_GATHER_ROWS:
        spans = list(zip(starts.tolist(), (starts + lengths).tolist(), strict=True))
        cols = np.concatenate([indices[a:b] for a, b in spans]) if spans else indices[:0]
        values = np.concatenate([data[a:b] for a, b in spans]).astype(np.float64) if spans else np.zeros(0)
    else:
        total = int(lengths.sum())
        # Position of every gathered entry: its row's start plus its rank within the row.
        pos = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths) + np.arange(total)
        cols, values = indices[pos], data[pos].astype(np.float64)
    if weights is not None:
        values *= np.repeat(np.asarray(weights, dtype=np.float64), lengths)
    return cols, values


def sparse_row_product(
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    rows: np.ndarray,
    weights: np.ndarray,
    n_cols: int,
    unit_data: bool = False,
) -> np.ndarray:
    """Dense ``weights @ matrix[rows]`` (float64) for a CSR matrix given as raw arrays: one user's
    row times a sparse matrix, accumulated with ``np.bincount`` in float64.

    ``unit_data`` says every stored value of the matrix is 1 (binary interactions): with unit
    weights too, the product is a plain count of column occurrences, which skips the value arrays."""
    if unit_data and bool(np.all(weights == 1)):
        spans = zip(indptr[rows].tolist(), indptr[rows + 1].tolist(), strict=True)
        cols = np.concatenate([indices[a:b] for a, b in spans] or [indices[:0]])
        return np.bincount(cols, minlength=n_cols).astype(np.float64)
    cols, values = gather_rows(indptr, indices, data, rows, weights)
    # astype: bincount of an empty input returns int64 whatever the weights' dtype
    return np.bincount(cols, weights=values, minlength=n_cols).astype(np.float64, copy=False)


def top_k_stable(values: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` largest ``values``, best first; equal values keep their position
    order (lower position first), so the cut at the k-th value is deterministic. ``-inf`` values
    are never chosen.

    For long inputs a strided sample first gives a lower bound on the k-th largest value (the k-th
    largest of a subset cannot exceed that of the whole), and only values at or above it are
    ranked: exact, and about ``sqrt(k n)`` work instead of ``n`` for the selection, which matters
    on 0/1 data where numpy's partition slows down on the many equal values."""
    values = np.asarray(values)
    n = len(values)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    if n > 16 * k:
        stride = max(1, n // int(np.sqrt(k * n)))
        sample = values[::stride]
        if len(sample) >= k:
            bound = np.partition(sample, len(sample) - k)[len(sample) - k]
            if np.isfinite(bound):
                positions = np.flatnonzero(values >= bound)
                return positions[top_k_stable(values[positions], k)] if len(positions) < n else _top_k_exact(values, k)
    return _top_k_exact(values, k)


def _top_k_exact(values: np.ndarray, k: int) -> np.ndarray:
    finite = values > -np.inf
    if not finite.all():
        positions = np.flatnonzero(finite)
        return positions[_top_k_exact(values[positions], k)]
    if len(values) <= k:
        return np.argsort(-values, kind="stable")
    # Everything strictly above the k-th largest value is in; ties at it are taken lowest position first.
    kth = np.partition(values, len(values) - k)[len(values) - k]
    above = np.flatnonzero(values > kth)
    tied = np.flatnonzero(values == kth)[: k - len(above)]
    chosen = np.concatenate([above, tied])
    return chosen[np.argsort(-values[chosen], kind="stable")]


class Recommender:
    """Base class. Subclasses implement ``fit``, ``score_users`` and ``_similar_scores``."""

    #: short registry name, e.g. "ease"
    name: ClassVar[str] = "base"
    #: names of the learned attributes (ending in "_") that ``save``/``load`` round-trip
    _artifacts: ClassVar[tuple[str, ...]] = ()

    def get_params(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.endswith("_") and not k.startswith("_")}

    def set_params(self, **params: Any) -> Recommender:
        for key, value in params.items():
            if key not in self.get_params():
                raise ValueError(f"{type(self).__name__} has no hyperparameter {key!r}")
            setattr(self, key, value)
        return self

    def fit(self, user_items: sp.csr_matrix, **kwargs: Any) -> Recommender:
        raise NotImplementedError

    def score_users(self, user_ids: np.ndarray, user_items: sp.csr_matrix) -> np.ndarray:
        """Dense scores ``(len(user_ids), n_items)``; ``user_items`` rows align with ``user_ids``."""
        raise NotImplementedError

    def _similar_scores(self, item_ids: np.ndarray) -> np.ndarray:
        """Dense item-item similarity rows ``(len(item_ids), n_items)``."""
        raise NotImplementedError

    @property
    def n_items(self) -> int:
        return int(self.n_items_)

    def recommend(
        self,
        user_ids: int | np.ndarray,
        user_items: sp.csr_matrix,
        N: int = 10,  # noqa: N803 - the name implicit uses
        filter_already_liked_items: bool = True,
        items: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        single = np.isscalar(user_ids)
        if single:
            fast = self._recommend_one(int(user_ids), user_items, N, filter_already_liked_items, items)
            if fast is not None:
                return fast
        ids = np.atleast_1d(np.asarray(user_ids, dtype=np.int64))
        rows = as_csr(user_items)
        if rows.shape[0] != len(ids):
            # Accept the full matrix too, as implicit does, and pick the users' rows.
            rows = rows[ids]
        scores = np.asarray(self.score_users(ids, rows), dtype=np.float32)
        if filter_already_liked_items:
            r, c = rows.nonzero()
            scores[r, c] = NEG_INF
        if items is not None:
            mask = np.ones(scores.shape[1], dtype=bool)
            mask[np.asarray(items, dtype=np.int64)] = False
            scores[:, mask] = NEG_INF
        out_ids, out_scores = top_n(scores, N)
        return (out_ids[0], out_scores[0]) if single else (out_ids, out_scores)

    def _score_one(self, user_id: int, items: np.ndarray, values: np.ndarray) -> np.ndarray | None:
        """Dense float32 scores of one user from their history as raw arrays (item indices and
        values of their CSR row), or ``None`` when the model has no single-user fast path.

        Why: one user's row through scipy costs a dozen sparse-matrix constructions and format
        checks (~0.1 ms each); the serving path calls ``recommend`` for one user at a time.
        Implementations must return what ``score_users`` returns for that user."""
        return None

    def _recommend_one(
        self,
        user_id: int,
        user_items: Any,
        n: int,
        filter_already_liked_items: bool,
        items: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """``recommend`` for one user through :meth:`_score_one`; ``None`` falls back to the batch path."""
        if type(self)._score_one is Recommender._score_one:
            return None
        row_items, row_values = one_row(user_items, user_id)
        scores = self._score_one(user_id, row_items, row_values)
        if scores is None:
            return None
        scores = np.array(scores, dtype=np.float32)  # a copy: the filters below write into it
        if filter_already_liked_items:
            scores[row_items[row_values != 0]] = NEG_INF  # like rows.nonzero(): explicit zeros stay
        if items is not None:
            mask = np.ones(scores.shape[0], dtype=bool)
            mask[np.asarray(items, dtype=np.int64)] = False
            scores[mask] = NEG_INF
        return top_n_1d(scores, n)

    def similar_items(self, item_ids: int | np.ndarray, N: int = 10) -> tuple[np.ndarray, np.ndarray]:  # noqa: N803
        single = np.isscalar(item_ids)
        ids = np.atleast_1d(np.asarray(item_ids, dtype=np.int64))
        scores = np.array(self._similar_scores(ids), dtype=np.float32)
        scores[np.arange(len(ids)), ids] = NEG_INF
        out_ids, out_scores = top_n(scores, N)
        return (out_ids[0], out_scores[0]) if single else (out_ids, out_scores)

    # --- persistence ------------------------------------------------------------------------
    def _state_arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        """Hyperparameters (as JSON bytes) and learned arrays, keys prefixed so models can nest."""
        arrays: dict[str, np.ndarray] = {}
        for attr in self._artifacts:
            value = getattr(self, attr)
            if sp.issparse(value):
                csr = sp.csr_matrix(value)
                arrays[f"{prefix}{attr}__data"] = csr.data
                arrays[f"{prefix}{attr}__indices"] = csr.indices
                arrays[f"{prefix}{attr}__indptr"] = csr.indptr
                arrays[f"{prefix}{attr}__shape"] = np.asarray(csr.shape, dtype=np.int64)
            else:
                arrays[f"{prefix}{attr}"] = np.asarray(value)
        meta = {"algorithm": self.name, "params": self.get_params()}
        arrays[f"{prefix}__meta__"] = np.frombuffer(json.dumps(meta, default=_json_default).encode(), dtype=np.uint8)
        return arrays

    @classmethod
    def _from_state(cls, data: Any, prefix: str = "") -> Recommender:
        meta = read_meta(data, prefix)
        if meta["algorithm"] != cls.name:
            raise ValueError(f"archive holds a {meta['algorithm']!r} model, not {cls.name!r}")
        model = cls(**meta["params"])
        for attr in cls._artifacts:
            key = f"{prefix}{attr}"
            if f"{key}__data" in data.files:
                shape = tuple(int(x) for x in data[f"{key}__shape"])
                value: Any = sp.csr_matrix(
                    (data[f"{key}__data"], data[f"{key}__indices"], data[f"{key}__indptr"]), shape=shape
                )
            else:
                value = data[key]
                if value.shape == ():
                    value = value.item()
            setattr(model, attr, value)
        model._after_load(data, prefix)
        return model

    def _after_load(self, data: Any, prefix: str) -> None:
        """Hook: rebuild caches that are derived from the saved arrays (default: nothing)."""

    def save(self, path: str | Path) -> None:
        """Write hyperparameters and learned arrays to one ``.npz`` (no pickle)."""
        np.savez(path, **self._state_arrays())

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        with np.load(path, allow_pickle=False) as data:
            return cls._from_state(data)


def read_meta(data: Any, prefix: str = "") -> dict[str, Any]:
    """The ``{"algorithm", "params"}`` record stored under ``prefix`` in an open npz archive."""
    return json.loads(bytes(data[f"{prefix}__meta__"]).decode())


def knn_all_pairs(weighted: sp.csr_matrix, k: int, num_threads: int = 0) -> sp.csr_matrix:
    """Top-``k`` of each row of ``weighted.T @ weighted`` without the diagonal (item-item kNN).

    Delegates to implicit's C++/OpenMP ``all_pairs_knn`` (about 10x faster than chunked scipy on
    50k x 20k, see docs/benchmarks.md). It keeps the item itself among the ``k``, so we ask for
    ``k + 1`` and drop the diagonal.
    """
    from implicit.nearest_neighbours import all_pairs_knn  # why: implicit (and OpenMP) loads only when used

    n = weighted.shape[1]
    if n == 0 or k <= 0:
        return sp.csr_matrix((n, n), dtype=np.float32)
    x = sp.csr_matrix(weighted, dtype=np.float64)
    sim = all_pairs_knn(x, min(k + 1, n), show_progress=False, num_threads=num_threads).tocsr()
    sim.setdiag(0)
    sim.eliminate_zeros()
    sim = topk_rows(sim, k)
    return sp.csr_matrix(sim, dtype=np.float32)


def topk_rows(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the ``k`` largest stored values of every row of a CSR matrix (vectorised, no Python loop)."""
    csr = sp.csr_matrix(matrix)
    counts = np.diff(csr.indptr)
    if counts.size == 0 or counts.max(initial=0) <= k:
        csr.sort_indices()
        return csr
    rows = np.repeat(np.arange(csr.shape[0]), counts)
    order = np.lexsort((-csr.data, rows))  # by row, then value descending
    rank = np.arange(len(order)) - np.repeat(csr.indptr[:-1], counts)
    keep = order[rank < k]
    out = sp.csr_matrix((csr.data[keep], (rows[keep], csr.indices[keep])), shape=csr.shape)
    out.sort_indices()
    return out


def sparse_dense_rows(matrix: sp.spmatrix) -> np.ndarray:
    """Densify a sparse product as float32 (the dtype ``top_n`` and the filters work in)."""
    return np.asarray(matrix.toarray() if sp.issparse(matrix) else matrix, dtype=np.float32)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot serialise {type(value).__name__} hyperparameter")
