"""The contract every recommender in the engine follows (modelled on implicit and scikit-learn).

* ``__init__`` stores hyperparameters only; ``get_params()`` returns them.
* ``fit(user_items: csr_matrix, *, item_features=None, item_categories=None, timestamps=None) -> self``.
  Learned attributes end in ``_``.
* ``score_users(user_ids, user_items) -> ndarray (len(user_ids), n_items)``: raw scores for a batch.
* ``recommend(user_ids, user_items, N, filter_already_liked_items=True, items=None)`` returns
  ``(ids, scores)``: 1-D arrays for one user id, 2-D ``(n_users, N)`` arrays for an array of ids.
  Rows are padded with id ``-1`` and score ``-inf`` where fewer than ``N`` items qualify.
* ``similar_items(item_ids, N)`` returns ``(ids, scores)`` in the same shapes, excluding the item.
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
