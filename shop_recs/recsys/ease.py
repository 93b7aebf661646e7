"""EASE^R (Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse Data")."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from .base import Recommender, as_csr, scale_values, sparse_dense_rows

DEFAULT_MAX_ITEMS = 20_000


class EASE(Recommender):
    """Closed-form linear item-item model: ``B = I - P diag(1/diag(P))`` with ``P = (X'X + l2 I)^-1``.

    Memory and time grow as items^2 and items^3 (20,000 items: a 3.2 GB float64 Gram matrix and
    about a minute of factorisation on 2 cores), so ``fit`` refuses more than ``max_items`` items with
    a ValueError; restrict the catalogue to the most popular items first, or use RP3beta/ItemKNN.

    Solved through Cholesky (``scipy.linalg.cho_factor``) and LAPACK ``potri``, which forms the
    inverse from the Cholesky factor: about n^3 flops against about 2 n^3 for ``inv`` (LU) or
    ``cho_solve`` with an identity right-hand side.
    """

    name: ClassVar[str] = "ease"
    _artifacts: ClassVar[tuple[str, ...]] = ("B_", "n_items_")

    def __init__(
        self,
        l2: float = 500.0,
        max_items: int = DEFAULT_MAX_ITEMS,
        input_scaling: str = "binary",
        debias: float = 0.0,
    ) -> None:
        self.l2 = l2
        self.max_items = max_items
        self.input_scaling = input_scaling
        self.debias = debias

    def fit(self, user_items: sp.csr_matrix, cache: dict[str, Any] | None = None, **kwargs: Any) -> EASE:
        """Fit. ``cache`` (a dict shared by a tuner's trials) keeps the Gram matrix of the same input,
        so a grid over ``l2`` builds ``X'X`` once; only the regularised copy and its Cholesky are new."""
        x = scale_values(as_csr(user_items), self.input_scaling)
        n = x.shape[1]
        if n > self.max_items:
            raise ValueError(
                f"EASE is limited to max_items={self.max_items} items (memory grows as items^2); "
                f"got {n} items. Keep only the most popular items or raise max_items."
            )
        self.n_items_ = n
        self.item_scale_ = debias_scale(x, float(self.debias))
        key = (id(user_items), user_items.shape, user_items.nnz, self.input_scaling, float(self.debias))
        if cache is not None and cache.get("ease_gram_key") == key:
            gram = cache["ease_gram"].copy()
        else:
            gram = gram_matrix(x @ sp.diags(self.item_scale_) if self.debias else x)
            if cache is not None:
                cache.update(ease_gram_key=key, ease_gram=gram.copy())
        gram[np.diag_indices(n)] += float(self.l2)
        # potri returns Fortran order; scoring needs C-contiguous rows (else scipy copies B per call).
        self.B_ = np.ascontiguousarray(ease_weights(gram), dtype=np.float32)
        if self.debias:
            self.B_ *= self.item_scale_[:, None].astype(np.float32)  # score = (X D) B: fold D into B
        return self

    def score_users(self, user_ids: np.ndarray, user_items: sp.csr_matrix) -> np.ndarray:
        return sparse_dense_rows(scale_values(as_csr(user_items), self.input_scaling) @ self.B_)

    def _similar_scores(self, item_ids: np.ndarray) -> np.ndarray:
        return np.array(self.B_[item_ids], dtype=np.float32)

    def item_contributions(self, history: np.ndarray, item_id: int) -> np.ndarray:
        return np.asarray(self.B_[history, item_id], dtype=np.float64)


def debias_scale(x: sp.csr_matrix, strength: float) -> np.ndarray:
    """Per-item input weights ``pop_i ** -strength`` (1 for unseen items): a degree-normalised Gram
    ``D X'X D``, so popular items weigh less in the regression (0 = plain EASE)."""
    pop = np.bincount(x.indices, minlength=x.shape[1]).astype(np.float64)
    if not strength:
        return np.ones(x.shape[1])
    return np.where(pop > 0, np.maximum(pop, 1.0) ** (-strength), 1.0)


def gram_matrix(x: sp.csr_matrix) -> np.ndarray:
    """Dense float64 ``X'X`` of a sparse user-item matrix."""
    xt = x.T.tocsr().astype(np.float64)
    return np.asarray((xt @ xt.T).toarray(), dtype=np.float64)


def ease_weights(gram_plus_l2: np.ndarray) -> np.ndarray:
    """EASE weights from ``X'X + l2 I`` (overwritten in place to save one n x n copy)."""
    c, lower = scipy.linalg.cho_factor(gram_plus_l2, lower=False, overwrite_a=True, check_finite=False)
    (potri,) = scipy.linalg.get_lapack_funcs(("potri",), (c,))
    p, info = potri(c, lower=lower, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"potri failed with info={info}")
    # potri fills the upper triangle only; mirror it block by block (no full n x n temporaries).
    n = p.shape[0]
    for s in range(0, n, 1024):
        e = min(s + 1024, n)
        p[s:e, :s] = p[:s, s:e].T
        block = p[s:e, s:e]
        p[s:e, s:e] = np.triu(block) + np.triu(block, 1).T
    p /= -np.diag(p).copy()[None, :]
    np.fill_diagonal(p, 0.0)
    return p
