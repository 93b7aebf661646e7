"""Non-personalised recommenders: global popularity, per-category popularity and time-decayed trending.

They are also the cold-start fallback of the hybrid: a user with no history gets these scores.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from .base import NEG_INF, Recommender, as_csr, top_n

SECONDS_PER_DAY = 86_400.0


class MostPopular(Recommender):
    """Items ranked by how many users interacted with them (``count="users"``) or by summed weight.

    ``fit`` optionally takes ``item_categories`` (an int array, one category per item, -1 for none)
    so that :meth:`recommend_in_category` can rank within one category; ``similar_items`` of an
    item are then the most popular items of the same category.
    """

    name: ClassVar[str] = "popularity"
    _artifacts: ClassVar[tuple[str, ...]] = ("popularity_", "item_categories_", "n_items_")

    def __init__(self, count: str = "users") -> None:
        self.count = count

    def _raw_popularity(self, user_items: sp.csr_matrix, **kwargs: Any) -> np.ndarray:
        if self.count == "users":
            return np.bincount(user_items.indices, minlength=user_items.shape[1]).astype(np.float64)
        if self.count == "weight":
            return np.asarray(user_items.sum(axis=0)).ravel().astype(np.float64)
        raise ValueError(f"count must be 'users' or 'weight', got {self.count!r}")

    def fit(self, user_items: sp.csr_matrix, item_categories: np.ndarray | None = None, **kwargs: Any) -> MostPopular:
        user_items = as_csr(user_items)
        self.n_items_ = user_items.shape[1]
        pop = self._raw_popularity(user_items, **kwargs)
        # A tiny id-based tie-break keeps the order deterministic and lets zero-interaction items
        # still be recommended (cold-start catalogue) after every item that has interactions.
        tie = 1e-6 * (1.0 - np.arange(self.n_items_) / max(self.n_items_, 1))
        self.popularity_ = (pop + tie).astype(np.float32)
        if item_categories is None:
            self.item_categories_ = np.full(self.n_items_, -1, dtype=np.int64)
        else:
            cats = np.asarray(item_categories, dtype=np.int64)
            if cats.shape != (self.n_items_,):
                raise ValueError(f"item_categories has shape {cats.shape}, expected ({self.n_items_},)")
            self.item_categories_ = cats
        return self

    def score_users(self, user_ids: np.ndarray, user_items: sp.csr_matrix) -> np.ndarray:
        return np.broadcast_to(self.popularity_, (len(user_ids), self.n_items_)).copy()

    def _score_one(self, user_id: int, items: np.ndarray, values: np.ndarray) -> np.ndarray:
        return self.popularity_  # recommend copies before filtering

    def _similar_scores(self, item_ids: np.ndarray) -> np.ndarray:
        scores = np.tile(self.popularity_, (len(item_ids), 1))
        cats = self.item_categories_[item_ids]
        for row, cat in enumerate(cats):
            if cat >= 0:
                scores[row, self.item_categories_ != cat] = NEG_INF
        return scores

    def recommend_in_category(
        self,
        category: int,
        N: int = 10,  # noqa: N803
        user_items: sp.csr_matrix | None = None,
        user_id: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Most popular items of one category; pass ``user_items`` (one row) to drop items already seen."""
        scores = self.popularity_.copy()[None, :]
        scores[0, self.item_categories_ != category] = NEG_INF
        if user_items is not None:
            row = as_csr(user_items)
            if row.shape[0] != 1:
                row = row[[user_id]]
            scores[0, row.indices] = NEG_INF
        ids, top = top_n(scores, N)
        return ids[0], top[0]


class Trending(MostPopular):
    """Time-decayed popularity: each interaction counts ``weight * 0.5 ** (age / half_life_days)``.

    ``fit`` takes either ``timestamps`` (seconds, one per stored value of ``user_items``, aligned
    with ``user_items.data`` after :func:`as_csr` sorting -- pass the matrix already sorted) or
    ``item_timestamps`` (one recency timestamp per item, e.g. last sale). ``now`` defaults to the
    newest timestamp so that refitting on the same data is deterministic. Without timestamps it
    falls back to plain popularity.
    """

    name: ClassVar[str] = "trending"

    def __init__(self, half_life_days: float = 7.0, count: str = "weight", now: float | None = None) -> None:
        self.half_life_days = half_life_days
        self.count = count
        self.now = now

    def _raw_popularity(
        self,
        user_items: sp.csr_matrix,
        timestamps: np.ndarray | None = None,
        item_timestamps: np.ndarray | None = None,
        **kwargs: Any,
    ) -> np.ndarray:
        half_life = float(self.half_life_days) * SECONDS_PER_DAY
        values = user_items.data.astype(np.float64) if self.count == "weight" else np.ones(user_items.nnz)
        if timestamps is not None:
            ts = np.asarray(timestamps, dtype=np.float64)
            if ts.shape != (user_items.nnz,):
                raise ValueError(f"timestamps must have one entry per nonzero ({user_items.nnz}), got {ts.shape}")
            now = float(ts.max(initial=0.0)) if self.now is None else float(self.now)
            decayed = values * np.exp2(-np.maximum(now - ts, 0.0) / half_life)
            return np.bincount(user_items.indices, weights=decayed, minlength=user_items.shape[1])
        pop = np.bincount(user_items.indices, weights=values, minlength=user_items.shape[1])
        if item_timestamps is not None:
            its = np.asarray(item_timestamps, dtype=np.float64)
            now = float(its.max(initial=0.0)) if self.now is None else float(self.now)
            pop = pop * np.exp2(-np.maximum(now - its, 0.0) / half_life)
        return pop
