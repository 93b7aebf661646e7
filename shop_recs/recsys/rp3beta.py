"""RP3beta (Paudel et al. 2017, "Updatable, accurate, diverse, and scalable recommendations for
interactive applications"): a three-step random walk user -> item -> user -> item whose landing
probability is divided by the target item's popularity ** beta.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from .base import as_csr, knn_all_pairs, scale_values
from .knn import SimilarityRecommender


class RP3beta(SimilarityRecommender):
    """``W[i, j] = sum_u P_iu[i, u]**alpha * P_ui[u, j]**alpha / pop_j**beta``, top-``K`` per row.

    ``P_ui`` and ``P_iu`` are the row-(L1)-normalised user->item and item->user transition matrices;
    ``pop_j`` is the number of users who interacted with item j. The item itself is excluded.

    Why it is computed through implicit's ``all_pairs_knn`` (C++, OpenMP): with
    ``w[u, i] = r_ui**alpha * deg_u**(-alpha/2) * pop_i**(-beta)`` the product ``w.T @ w`` equals
    ``W[i, j] * deg_i**alpha * pop_i**(-beta)``, i.e. ``W`` up to a per-row factor, which does not
    change any row's top-K. We rescale the kept values afterwards, so the result is exact.

    ``alpha`` above 1 (up to about 2.5) sharpens the walk towards strong co-occurrences;
    ``normalize_similarity`` L1-normalises each kept row (:func:`normalise_similarity_rows`); ``beta``
    is the popularity debiasing term, tuned like any other parameter.
    """

    name: ClassVar[str] = "rp3beta"

    def __init__(
        self,
        alpha: float = 1.0,
        beta: float = 0.5,
        K: int = 200,  # noqa: N803
        input_scaling: str = "binary",
        num_threads: int = 0,
        normalize_similarity: bool = False,
    ) -> None:
        self.input_scaling = input_scaling
        self.normalize_similarity = normalize_similarity
        self.alpha = alpha
        self.beta = beta
        self.K = K
        self.num_threads = num_threads

    def fit(self, user_items: sp.csr_matrix, **kwargs: Any) -> RP3beta:
        x = scale_values(as_csr(user_items), self.input_scaling).astype(np.float64)
        self.n_items_ = x.shape[1]
        a, b = float(self.alpha), float(self.beta)
        user_deg = np.asarray(x.sum(axis=1)).ravel()  # L1 row sums of P_ui
        item_deg = np.asarray(x.sum(axis=0)).ravel()  # L1 row sums of P_iu
        pop = np.bincount(x.indices, minlength=self.n_items_).astype(np.float64)
        with np.errstate(divide="ignore"):
            user_scale = np.where(user_deg > 0, user_deg ** (-a / 2), 0.0)
            item_pop_scale = np.where(pop > 0, pop ** (-b), 0.0)
            row_fix = np.where(item_deg > 0, item_deg ** (-a), 0.0) / np.where(pop > 0, pop ** (-b), 1.0)
        w = x.copy()
        w.data = w.data**a
        w = sp.diags(user_scale) @ w @ sp.diags(item_pop_scale)
        sim = knn_all_pairs(sp.csr_matrix(w), int(self.K), self.num_threads)
        sim = sp.csr_matrix(sp.diags(row_fix) @ sim, dtype=np.float64)
        if self.normalize_similarity:
            sim = normalise_similarity_rows(sim)
        self.similarity_ = sp.csr_matrix(sim, dtype=np.float32)
        return self


def normalise_similarity_rows(sim: sp.csr_matrix) -> sp.csr_matrix:
    """Divide each row of the kept top-K similarities by its L1 sum (rows of zeros stay zero).

    With alpha above 1 the walk's raw probabilities shrink fast for items with many buyers, so a
    user's history items contribute on very different scales; per-row normalisation (Dacrema et al.,
    RecSys 2019 reproducibility study) makes each history item cast one unit of vote."""
    out = sp.csr_matrix(sim, dtype=np.float64, copy=True)
    sums = np.asarray(np.abs(out).sum(axis=1)).ravel()
    scale = np.where(sums > 0, 1.0 / np.where(sums > 0, sums, 1.0), 0.0)
    out.data *= np.repeat(scale, np.diff(out.indptr))
    return out
