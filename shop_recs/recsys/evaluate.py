"""Offline evaluation: full ranking over all items, each user's train items excluded.

For every user with at least one test positive, the model ranks the whole catalog (the train index
space) with ``filter_already_liked_items=True``; the top ``max(ks)`` are compared with the user's
test items. Users are processed in batches so memory stays ``O(batch_size * n_items)``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from . import metrics as mx
from .base import Recommender


@dataclass
class EvaluationResult:
    """What :func:`evaluate` measured.

    ``metrics`` holds means over evaluated users (``"ndcg@10"``... plus beyond-accuracy
    ``coverage@k``, ``gini@k``, ``novelty@k``, ``diversity@k``, ``popularity@k`` at the largest k);
    ``per_user`` holds the per-user arrays aligned with ``users`` (train-space indices);
    ``slices`` maps slice name -> metric means over that slice's users; ``recs`` is the
    ``(len(users), max(ks))`` recommendation array (``-1`` padded).
    """

    ks: list[int]
    users: np.ndarray
    metrics: dict[str, float]
    per_user: dict[str, np.ndarray]
    slices: dict[str, dict[str, float]]
    recs: np.ndarray
    recommend_seconds: float
    fit_seconds: float | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> float:
        return self.metrics[key]

    def ci(self, metric: str, n_resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
        """95% bootstrap confidence interval of a per-user metric's mean."""
        return mx.bootstrap_ci(self.per_user[metric], n_resamples=n_resamples, seed=seed)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no per-user arrays)."""
        return {
            "ks": self.ks,
            "n_users": int(len(self.users)),
            "metrics": self.metrics,
            "slices": self.slices,
            "recommend_seconds": self.recommend_seconds,
            "fit_seconds": self.fit_seconds,
            "info": self.info,
        }


def recommend_all(
    model: Recommender, train: sp.csr_matrix, users: np.ndarray, n: int, batch_size: int = 1024
) -> tuple[np.ndarray, float]:
    """Top-``n`` (train items filtered) for ``users`` in batches; returns ``(recs, seconds)``."""
    out = np.full((len(users), n), -1, dtype=np.int64)
    start = time.perf_counter()
    for lo in range(0, len(users), batch_size):
        batch = np.asarray(users[lo : lo + batch_size], dtype=np.int64)
        ids, _ = model.recommend(batch, train[batch], N=n, filter_already_liked_items=True)
        ids = np.asarray(ids, dtype=np.int64).reshape(len(batch), -1)
        width = min(n, ids.shape[1])
        out[lo : lo + len(batch), :width] = ids[:, :width]
    return out, time.perf_counter() - start


def _mean(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0 or np.isnan(values).all():
        return float("nan")
    return float(np.nanmean(values))


def evaluate(
    model: Recommender,
    train: sp.csr_matrix,
    test: sp.csr_matrix,
    ks: Iterable[int] = (10,),
    slices: Mapping[str, np.ndarray] | None = None,
    cold_threshold: int = 5,
    item_vectors: sp.spmatrix | np.ndarray | None = None,
    users: np.ndarray | None = None,
    batch_size: int = 1024,
    diversity: bool = True,
) -> EvaluationResult:
    """Evaluate a FITTED model on ``test`` (same index space as ``train``).

    * ``users``: who to score (default: every user with a test positive).
    * ``slices``: extra name -> user-index array or boolean mask over all users; ``cold`` (at most
      ``cold_threshold`` distinct train items) and ``warm`` (more) are always added.
    * ``item_vectors``: ``(n_items, d)`` for intra-list diversity; default ``train.T`` (items that
      share buyers are similar). ``diversity=False`` skips it.
    """
    ks = sorted({int(k) for k in ks})
    max_k = ks[-1]
    train = sp.csr_matrix(train, dtype=np.float32)
    test = sp.csr_matrix(test)
    if train.shape != test.shape:
        raise ValueError(f"train {train.shape} and test {test.shape} must share one index space")
    n_users, n_items = train.shape
    if users is None:
        users = np.flatnonzero(np.asarray((test != 0).sum(axis=1)).ravel() > 0)
    users = np.asarray(users, dtype=np.int64)
    recs, seconds = recommend_all(model, train, users, max_k, batch_size=batch_size)
    per_user = mx.ranking_metrics(recs, test[users], ks)

    pop = mx.item_popularity(train)
    n_train_users = int((np.diff(train.indptr) > 0).sum())
    per_user[f"novelty@{max_k}"] = mx.novelty(recs, pop, n_train_users)
    per_user[f"popularity@{max_k}"] = mx.mean_popularity(recs, pop)
    if diversity and max_k > 1:
        vectors = train.T.tocsr() if item_vectors is None else item_vectors
        per_user[f"diversity@{max_k}"] = mx.intra_list_diversity(recs, vectors)

    summary = {name: _mean(arr) for name, arr in per_user.items()}
    for k in ks:
        summary[f"coverage@{k}"] = mx.catalog_coverage(recs[:, :k], n_items)
        summary[f"gini@{k}"] = mx.gini_index(mx.exposure(recs[:, :k], n_items))

    train_counts = np.diff(train.indptr)[users]
    masks: dict[str, np.ndarray] = {
        "cold": train_counts <= cold_threshold,
        "warm": train_counts > cold_threshold,
    }
    for name, sel in (slices or {}).items():
        sel = np.asarray(sel)
        if sel.dtype == bool:
            if len(sel) != n_users:
                raise ValueError(f"slice {name!r}: a boolean mask must cover all {n_users} users")
            masks[name] = sel[users]
        else:
            masks[name] = np.isin(users, sel)
    slice_means = {
        name: {"n_users": int(mask.sum()), **{m: _mean(a[mask]) for m, a in per_user.items()}}
        for name, mask in masks.items()
    }
    return EvaluationResult(
        ks=ks,
        users=users,
        metrics=summary,
        per_user=per_user,
        slices=slice_means,
        recs=recs,
        recommend_seconds=seconds,
        info={"n_items": n_items, "cold_threshold": cold_threshold},
    )


def fit_and_evaluate(model: Recommender, train: sp.csr_matrix, test: sp.csr_matrix, **kwargs: Any) -> EvaluationResult:
    """Fit on ``train`` (timed), then :func:`evaluate`."""
    start = time.perf_counter()
    model.fit(sp.csr_matrix(train, dtype=np.float32))
    fit_seconds = time.perf_counter() - start
    result = evaluate(model, train, test, **kwargs)
    result.fit_seconds = fit_seconds
    return result
