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
    def save(self, path: str | Path) -> None:
        """Write hyperparameters and learned arrays to one ``.npz`` (no pickle)."""
        arrays: dict[str, np.ndarray] = {}
        for attr in self._artifacts:
            value = getattr(self, attr)
            if sp.issparse(value):
                csr = sp.csr_matrix(value)
                arrays[f"{attr}__data"] = csr.data
                arrays[f"{attr}__indices"] = csr.indices
                arrays[f"{attr}__indptr"] = csr.indptr
                arrays[f"{attr}__shape"] = np.asarray(csr.shape, dtype=np.int64)
            else:
                arrays[attr] = np.asarray(value)
        meta = {"algorithm": self.name, "params": self.get_params()}
        arrays["__meta__"] = np.frombuffer(json.dumps(meta, default=_json_default).encode(), dtype=np.uint8)
        np.savez(path, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(bytes(data["__meta__"]).decode())
            if meta["algorithm"] != cls.name:
                raise ValueError(f"{path} holds a {meta['algorithm']!r} model, not {cls.name!r}")
            model = cls(**meta["params"])
            for attr in cls._artifacts:
                if f"{attr}__data" in data.files:
                    shape = tuple(int(x) for x in data[f"{attr}__shape"])
                    value: Any = sp.csr_matrix(
                        (data[f"{attr}__data"], data[f"{attr}__indices"], data[f"{attr}__indptr"]), shape=shape
                    )
                else:
                    value = data[attr]
                    if value.shape == ():
                        value = value.item()
                setattr(model, attr, value)
        return model


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot serialise {type(value).__name__} hyperparameter")
