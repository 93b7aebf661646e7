"""Explanations for neighbourhood and linear models: "because you bought X".

For item-based models (ItemKNN, RP3beta, EASE, content) a recommended item's score is
``sum_h w_h * sim(h, item)`` over the user's history ``h``; each term is that history item's
contribution and its share is the term over the sum of positive terms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .base import Recommender, as_csr, scale_values


@dataclass(frozen=True)
class Contribution:
    """One history item's part in a recommendation."""

    item_id: int
    weight: float  # the user's interaction weight for the history item
    similarity: float
    contribution: float  # weight * similarity
    share: float  # contribution / sum of positive contributions (0..1)


def explain(model: Recommender, user_history: sp.csr_matrix, item_id: int, top: int = 3) -> list[Contribution]:
    """The history items that contributed most to ``item_id`` for one user, largest first.

    ``user_history`` is the user's single row of the user-item matrix. Models that do not expose
    ``item_contributions`` (matrix factorisation, popularity) raise ``TypeError``. For a hybrid,
    pass the item-based component (e.g. ``hybrid.models_["item_knn"]``).
    """
    if not hasattr(model, "item_contributions"):
        raise TypeError(f"{type(model).__name__} cannot explain recommendations by history items")
    # The same rescaling the model applies when scoring, so shares add up to the model's score.
    row = scale_values(as_csr(user_history), getattr(model, "input_scaling", "raw"))
    if row.shape[0] != 1:
        raise ValueError("user_history must be a single row")
    history, weights = row.indices.astype(np.int64), row.data.astype(np.float64)
    if len(history) == 0:
        return []
    sims = np.asarray(model.item_contributions(history, int(item_id)), dtype=np.float64)
    contrib = weights * sims
    total = contrib[contrib > 0].sum()
    order = np.argsort(-contrib, kind="stable")[:top]
    return [
        Contribution(
            item_id=int(history[i]),
            weight=float(weights[i]),
            similarity=float(sims[i]),
            contribution=float(contrib[i]),
            share=float(contrib[i] / total) if total > 0 and contrib[i] > 0 else 0.0,
        )
        for i in order
        if contrib[i] > 0
    ]
