"""Diversity re-ranking with Maximal Marginal Relevance (Carbonell and Goldstein 1998)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from .base import Recommender

Similarity = sp.spmatrix | np.ndarray | Recommender | Callable[[np.ndarray], np.ndarray]


def candidate_similarity(similarity: Similarity, ids: np.ndarray) -> np.ndarray:
    """Dense ``(len(ids), len(ids))`` similarity among the candidates, symmetrised, diagonal 0.

    ``similarity`` is an item-item matrix (sparse or dense), a fitted Recommender (its
    ``_similar_scores``, e.g. a content or ItemKNN model) or a callable ``ids -> rows``.
    """
    if isinstance(similarity, Recommender):
        rows = similarity._similar_scores(ids)
    elif callable(similarity):
        rows = similarity(ids)
    else:
        rows = similarity[ids]
    rows = rows.toarray() if sp.issparse(rows) else np.asarray(rows)
    sub = np.asarray(rows[:, ids], dtype=np.float64)
    sub[~np.isfinite(sub)] = 0.0
    sub = np.maximum(sub, sub.T)
    np.fill_diagonal(sub, 0.0)
    return sub


def mmr_rerank(
    ids: np.ndarray,
    scores: np.ndarray,
    similarity: Similarity,
    diversity: float = 0.3,
    N: int | None = None,  # noqa: N803
) -> tuple[np.ndarray, np.ndarray]:
    """Re-rank candidates: each step takes ``argmax (1-d) * rel - d * max_sim_to_already_picked``.

    ``diversity`` d in [0, 1]: 0 keeps the relevance order, 1 only avoids similarity (ties broken by
    relevance). Relevance is min-max scaled over the candidates so that d means the same for every
    model. Padding (-1 ids) is dropped. Returns the chosen ids with their original scores.
    """
    if not 0.0 <= diversity <= 1.0:
        raise ValueError(f"diversity must be in [0, 1], got {diversity}")
    ids = np.asarray(ids, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    valid = (ids >= 0) & np.isfinite(scores)
    ids, scores = ids[valid], scores[valid]
    n_out = len(ids) if N is None else min(int(N), len(ids))
    if n_out == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
    span = scores.max() - scores.min()
    rel = (scores - scores.min()) / span if span > 0 else np.ones_like(scores)
    sim = candidate_similarity(similarity, ids) if diversity > 0 else np.zeros((len(ids), len(ids)))
    picked: list[int] = []
    max_sim = np.zeros(len(ids))
    available = np.ones(len(ids), dtype=bool)
    # A tiny relevance term breaks ties at diversity=1 in favour of the more relevant item.
    objective_rel = (1.0 - diversity) * rel + 1e-9 * rel
    for _ in range(n_out):
        objective = np.where(available, objective_rel - diversity * max_sim, -np.inf)
        best = int(np.argmax(objective))
        picked.append(best)
        available[best] = False
        max_sim = np.maximum(max_sim, sim[best])
    order = np.asarray(picked)
    return ids[order], scores[order].astype(np.float32)
