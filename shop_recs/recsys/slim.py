"""SLIM (Ning & Karypis 2011): a sparse item-item regression, one scikit-learn ``ElasticNet`` per item.

For each item j: ``min_w 1/(2 n_users) ||x_j - X w||^2 + alpha*l1_ratio*|w|_1 + alpha*(1-l1_ratio)/2 ||w||^2``
with ``w_j = 0`` (and ``w >= 0`` when ``positive``). Items are solved in chunks on ``n_jobs`` threads
(scikit-learn's coordinate descent releases the GIL), most popular items first, within
``time_budget`` seconds: items left when the budget runs out keep an empty column (they can still be
recommended through nothing, so the fit records ``n_fitted_``) instead of the fit overrunning.
"""

from __future__ import annotations

import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from .base import as_csr, scale_values
from .knn import SimilarityRecommender


class SLIM(SimilarityRecommender):
    """Sparse linear item-item model solved with ``sklearn.linear_model.ElasticNet`` per item."""

    name: ClassVar[str] = "slim"

    def __init__(
        self,
        alpha: float = 1e-3,
        l1_ratio: float = 0.1,
        positive: bool = True,
        K: int = 100,  # noqa: N803 - kept weights per item, like the kNN family
        max_iter: int = 100,
        tol: float = 1e-4,
        n_jobs: int = 2,
        time_budget: float | None = None,
        input_scaling: str = "binary",
    ) -> None:
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.positive = positive
        self.K = K
        self.max_iter = max_iter
        self.tol = tol
        self.n_jobs = n_jobs
        self.time_budget = time_budget
        self.input_scaling = input_scaling

    def fit(self, user_items: sp.csr_matrix, **kwargs: Any) -> SLIM:
        x = sp.csc_matrix(scale_values(as_csr(user_items), self.input_scaling), dtype=np.float64)
        n = x.shape[1]
        self.n_items_ = n
        order = np.argsort(-np.diff(x.indptr), kind="stable")  # popular items first
        deadline = None if self.time_budget is None else time.perf_counter() + float(self.time_budget)
        n_jobs = max(1, int(self.n_jobs))
        chunks = [c for c in np.array_split(order, max(1, min(n, n_jobs * 8))) if len(c)]
        with ThreadPoolExecutor(max_workers=n_jobs) as pool:
            parts = list(pool.map(lambda items: self._solve(x, items, deadline), chunks))
        rows = np.concatenate([p[0] for p in parts])
        cols = np.concatenate([p[1] for p in parts])
        vals = np.concatenate([p[2] for p in parts])
        self.n_fitted_ = int(sum(p[3] for p in parts))
        # W[i, j]: weight of history item i for target j; similarity rows are source items.
        self.similarity_ = sp.csr_matrix((vals, (rows, cols)), shape=(n, n), dtype=np.float32)
        return self

    def _solve(
        self, x: sp.csc_matrix, items: np.ndarray, deadline: float | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        # why: scikit-learn's linear models load only when SLIM is fitted
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import ElasticNet

        x = x.copy()  # each thread zeroes its own target column in place
        model = ElasticNet(
            alpha=float(self.alpha),
            l1_ratio=float(self.l1_ratio),
            positive=bool(self.positive),
            fit_intercept=False,
            copy_X=False,
            precompute=False,
            max_iter=int(self.max_iter),
            tol=float(self.tol),
            selection="cyclic",
        )
        rows, cols, vals = [], [], []
        done = 0
        for j in items.tolist():
            if deadline is not None and time.perf_counter() > deadline:
                break
            lo, hi = x.indptr[j], x.indptr[j + 1]
            target = np.asarray(x[:, j].toarray()).ravel()
            saved = x.data[lo:hi].copy()
            x.data[lo:hi] = 0.0
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(x, target)
            x.data[lo:hi] = saved
            coef = np.asarray(model.coef_, dtype=np.float64)
            nz = np.flatnonzero(coef)
            if len(nz) > self.K:
                nz = nz[np.argpartition(-np.abs(coef[nz]), self.K - 1)[: self.K]]
            rows.append(nz)
            cols.append(np.full(len(nz), j, dtype=np.int64))
            vals.append(coef[nz])
            done += 1
        empty = np.zeros(0, dtype=np.int64)
        return (
            np.concatenate(rows) if rows else empty,
            np.concatenate(cols) if cols else empty,
            np.concatenate(vals) if vals else np.zeros(0),
            done,
        )
