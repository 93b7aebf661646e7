"""Matrix factorisation: iALS and BPR (trained by implicit) and PureSVD.

The fitted factors are kept as plain arrays, so scoring (and ``load``) never needs implicit objects.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from .base import Recommender, as_csr
from .implicit_fit import fit_implicit


class FactorRecommender(Recommender):
    """Scores ``user_factors_ @ item_factors_.T``. Users outside the training matrix (id -1 or
    beyond ``n_users``) are folded in from their history via :meth:`fold_in`."""

    _artifacts: ClassVar[tuple[str, ...]] = ("user_factors_", "item_factors_", "n_items_")

    def fold_in(self, user_items: sp.csr_matrix) -> np.ndarray:
        raise NotImplementedError

    def _user_vectors(self, user_ids: np.ndarray, user_items: sp.csr_matrix) -> np.ndarray:
        known = (user_ids >= 0) & (user_ids < self.user_factors_.shape[0])
        if known.all():
            return self.user_factors_[user_ids]
        out = np.empty((len(user_ids), self.item_factors_.shape[1]), dtype=np.float32)
        out[known] = self.user_factors_[user_ids[known]]
        unknown = np.flatnonzero(~known)
        out[unknown] = self.fold_in(as_csr(user_items)[unknown])
        return out

    def score_users(self, user_ids: np.ndarray, user_items: sp.csr_matrix) -> np.ndarray:
        return self._user_vectors(user_ids, user_items) @ self.item_factors_.T

    def _similar_scores(self, item_ids: np.ndarray) -> np.ndarray:
        # Cosine between item factors, so that popular items (long vectors) do not dominate.
        norms = np.linalg.norm(self.item_factors_, axis=1)
        norms[norms == 0] = 1.0
        q = self.item_factors_ / norms[:, None]
        return q[item_ids] @ q.T


class ImplicitFactorRecommender(FactorRecommender):
    """A factor model trained by one of implicit's CPU models; every hyperparameter of the subclass
    is passed to it by name, and only the learned factors are kept."""

    #: "module:ClassName" of the implicit model, imported at fit time (implicit is optional at load).
    _implicit_model: ClassVar[str]

    def fit(self, user_items: sp.csr_matrix, **kwargs: Any) -> ImplicitFactorRecommender:
        x = as_csr(user_items)
        model = fit_implicit(self._implicit_model, x, self.get_params())
        self.user_factors_ = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        self.n_items_ = x.shape[1]
        return self


class ALS(ImplicitFactorRecommender):
    """Implicit-feedback ALS (Hu, Koren, Volinsky 2008) via ``implicit.cpu.als``; confidence is
    ``alpha * r_ui`` as in implicit 0.7 (build ``r_ui`` with :mod:`shop_recs.recsys.weighting`)."""

    name: ClassVar[str] = "als"
    _implicit_model: ClassVar[str] = "implicit.cpu.als:AlternatingLeastSquares"

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.01,
        alpha: float = 1.0,
        iterations: int = 15,
        random_state: int = 42,
        num_threads: int = 0,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.random_state = random_state
        self.num_threads = num_threads

    def fold_in(self, user_items: sp.csr_matrix) -> np.ndarray:
        """Exact ALS user step for new histories: ``(Y'Y + reg I + Y'(C-I)Y)^-1 Y'C p``."""
        y = self.item_factors_.astype(np.float64)
        yty = y.T @ y + self.regularization * np.eye(y.shape[1])
        out = np.zeros((user_items.shape[0], y.shape[1]), dtype=np.float32)
        for row in range(user_items.shape[0]):
            lo, hi = user_items.indptr[row], user_items.indptr[row + 1]
            idx, conf = user_items.indices[lo:hi], self.alpha * user_items.data[lo:hi].astype(np.float64)
            if len(idx) == 0:
                continue
            yi = y[idx]
            a = yty + (yi.T * (conf - 1.0)) @ yi
            out[row] = np.linalg.solve(a, yi.T @ conf)
        return out


class BPR(ImplicitFactorRecommender):
    """Bayesian Personalised Ranking (Rendle et al. 2009) via ``implicit.cpu.bpr``. implicit appends
    a bias column (item bias; the user side holds a constant 1), kept as-is in the factors."""

    name: ClassVar[str] = "bpr"
    _implicit_model: ClassVar[str] = "implicit.cpu.bpr:BayesianPersonalizedRanking"

    def __init__(
        self,
        factors: int = 64,
        learning_rate: float = 0.01,
        regularization: float = 0.01,
        iterations: int = 100,
        random_state: int = 42,
        num_threads: int = 0,
    ) -> None:
        self.factors = factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.iterations = iterations
        self.random_state = random_state
        self.num_threads = num_threads

    def fold_in(self, user_items: sp.csr_matrix) -> np.ndarray:
        """BPR has no closed-form user step; use the weighted mean of the history's item factors."""
        counts = np.asarray(user_items.sum(axis=1)).ravel()
        counts[counts == 0] = 1.0
        out = np.asarray(user_items @ self.item_factors_) / counts[:, None]
        out[:, -1] = 1.0  # the bias slot
        return out.astype(np.float32)


class PureSVD(Recommender):
    """PureSVD (Cremonesi et al. 2010): truncated SVD ``R ~ U S Q'``; scores ``r_u Q Q'`` (fold-in,
    so any history can be scored, including users unseen at fit time)."""

    name: ClassVar[str] = "pure_svd"
    _artifacts: ClassVar[tuple[str, ...]] = ("item_factors_", "n_items_")

    def __init__(self, factors: int = 64, n_iter: int = 5, random_state: int = 42) -> None:
        self.factors = factors
        self.n_iter = n_iter
        self.random_state = random_state

    def fit(self, user_items: sp.csr_matrix, **kwargs: Any) -> PureSVD:
        from sklearn.utils.extmath import randomized_svd  # why: sklearn is slow to import; only fit needs it

        x = as_csr(user_items)
        k = max(1, min(int(self.factors), min(x.shape) - 1))
        _, _, vt = randomized_svd(x, n_components=k, n_iter=self.n_iter, random_state=self.random_state)
        self.item_factors_ = np.ascontiguousarray(vt.T, dtype=np.float32)
        self.n_items_ = x.shape[1]
        return self

    def score_users(self, user_ids: np.ndarray, user_items: sp.csr_matrix) -> np.ndarray:
        q = self.item_factors_
        return np.asarray(as_csr(user_items) @ q) @ q.T

    def _similar_scores(self, item_ids: np.ndarray) -> np.ndarray:
        q = self.item_factors_
        return q[item_ids] @ q.T
