"""implicit's ALS, BPR and item-item cosine wrapped in the engine contract, for the ``--peers`` comparison.

These are reference points, not product models: they use implicit's own ``fit`` and ``recommend``
(CPU build, ``.to_cpu()`` when a GPU model comes back) with implicit's defaults, and
:data:`PEER_GRIDS` holds the small grid they are tuned over in the benchmark, the same treatment
the built-in models get.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from .base import NEG_INF, Recommender, as_csr
from .implicit_fit import fit_implicit
from .metrics import hits_matrix


class _ImplicitPeer(Recommender):
    """Common plumbing: keep the fitted implicit model in ``model_`` and delegate ``recommend``.
    Every hyperparameter of the subclass is passed by name to ``_implicit_model``."""

    model_: Any
    #: "module:ClassName" of the implicit model, imported at fit time (implicit is optional at load).
    _implicit_model: ClassVar[str]

    def fit(self, user_items: sp.csr_matrix, **kwargs: Any) -> _ImplicitPeer:
        user_items = as_csr(user_items)
        self.n_items_ = user_items.shape[1]
        model = fit_implicit(self._implicit_model, user_items, self.get_params())
        self.model_ = model.to_cpu() if hasattr(model, "to_cpu") else model
        return self

    def recommend(
        self,
        user_ids: int | np.ndarray,
        user_items: sp.csr_matrix,
        N: int = 10,  # noqa: N803
        filter_already_liked_items: bool = True,
        items: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        single = np.isscalar(user_ids)
        ids = np.atleast_1d(np.asarray(user_ids, dtype=np.int64))
        rows = as_csr(user_items)
        if rows.shape[0] != len(ids):
            rows = rows[ids]
        n = min(N, self.n_items)
        out_ids, out_scores = self.model_.recommend(
            ids, rows, N=n, filter_already_liked_items=filter_already_liked_items, items=items
        )
        out_ids = np.asarray(out_ids, dtype=np.int64).reshape(len(ids), -1)
        out_scores = np.asarray(out_scores, dtype=np.float32).reshape(len(ids), -1)
        # implicit marks filtered slots with -inf / -FLT_MAX scores: pad those the contract's way.
        bad = ~np.isfinite(out_scores) | (out_scores <= -1e30) | (out_ids < 0)
        if filter_already_liked_items:
            # implicit's item-item recommend pads short candidate lists with the user's own
            # (filtered) items at score 0; drop them so "already liked" is really filtered.
            bad |= hits_matrix(np.where(bad, -1, out_ids), rows)
        out_ids[bad] = -1
        out_scores[bad] = NEG_INF
        # keep the valid entries first, in their order (stable sort on the padding flag)
        order = np.argsort(bad, axis=1, kind="stable")
        out_ids = np.take_along_axis(out_ids, order, axis=1)
        out_scores = np.take_along_axis(out_scores, order, axis=1)
        if out_ids.shape[1] < N:
            pad = N - out_ids.shape[1]
            out_ids = np.hstack([out_ids, np.full((len(ids), pad), -1, dtype=np.int64)])
            out_scores = np.hstack([out_scores, np.full((len(ids), pad), NEG_INF, dtype=np.float32)])
        return (out_ids[0], out_scores[0]) if single else (out_ids, out_scores)


class _ImplicitMF(_ImplicitPeer):
    def score_users(self, user_ids: np.ndarray, user_items: sp.csr_matrix) -> np.ndarray:
        return np.asarray(self.model_.user_factors[np.asarray(user_ids)] @ self.model_.item_factors.T)

    def _similar_scores(self, item_ids: np.ndarray) -> np.ndarray:
        f = self.model_.item_factors
        norms = np.linalg.norm(f, axis=1) + 1e-12
        return (f[item_ids] @ f.T) / norms[item_ids, None] / norms[None, :]


class ImplicitALS(_ImplicitMF):
    """implicit's ``AlternatingLeastSquares`` (confidence ``1 + alpha * value``, conjugate gradient)."""

    name: ClassVar[str] = "implicit_als"
    _implicit_model: ClassVar[str] = "implicit.cpu.als:AlternatingLeastSquares"

    def __init__(
        self,
        factors: int = 100,
        regularization: float = 0.01,
        alpha: float = 1.0,
        iterations: int = 15,
        random_state: int = 0,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.random_state = random_state


class ImplicitBPR(_ImplicitMF):
    """implicit's ``BayesianPersonalizedRanking`` (SGD on sampled (user, positive, negative) triples)."""

    name: ClassVar[str] = "implicit_bpr"
    _implicit_model: ClassVar[str] = "implicit.cpu.bpr:BayesianPersonalizedRanking"

    def __init__(
        self,
        factors: int = 100,
        learning_rate: float = 0.01,
        regularization: float = 0.01,
        iterations: int = 100,
        random_state: int = 0,
    ) -> None:
        self.factors = factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.iterations = iterations
        self.random_state = random_state


class ImplicitCosine(_ImplicitPeer):
    """implicit's item-item ``CosineRecommender`` keeping the ``K`` nearest neighbours per item."""

    name: ClassVar[str] = "implicit_cosine"
    _implicit_model: ClassVar[str] = "implicit.nearest_neighbours:CosineRecommender"

    def __init__(self, K: int = 20) -> None:  # noqa: N803 - implicit's name
        self.K = K

    def score_users(self, user_ids: np.ndarray, user_items: sp.csr_matrix) -> np.ndarray:
        return np.asarray((as_csr(user_items) @ self.model_.similarity).todense())

    def _similar_scores(self, item_ids: np.ndarray) -> np.ndarray:
        return np.asarray(self.model_.similarity[item_ids].todense())


PEERS: dict[str, type[Recommender]] = {
    "implicit_als": ImplicitALS,
    "implicit_bpr": ImplicitBPR,
    "implicit_cosine": ImplicitCosine,
}

#: Small grids (implicit's defaults are always tried too, see ``tuning.tune``).
PEER_GRIDS: dict[str, dict[str, list[Any]]] = {
    "implicit_als": {"factors": [64, 128], "regularization": [0.01, 0.1], "alpha": [1.0, 10.0]},
    "implicit_bpr": {"factors": [64, 128], "learning_rate": [0.01, 0.05], "iterations": [100, 300]},
    "implicit_cosine": {"K": [10, 50, 100, 200]},
}


def make_peer(name: str, **params: Any) -> Recommender:
    """Instantiate a peer by name (``implicit_als``, ``implicit_bpr``, ``implicit_cosine``)."""
    try:
        return PEERS[name](**params)
    except KeyError:
        raise ValueError(f"unknown peer {name!r}; choose from {sorted(PEERS)}") from None
