"""Build the user x item weight matrix from raw events.

Pure numpy/scipy. Each event contributes ``event_weight[type] * value * 0.5 ** (age / half_life)``;
duplicates of the same (user, item) are summed; a confidence transform is applied last:

* ``"none"``   -- the summed weight ``w``;
* ``"linear"`` -- ``1 + alpha * w`` (Hu, Koren, Volinsky 2008);
* ``"log"``    -- ``1 + alpha * log1p(w / epsilon)`` (same paper, for heavy-tailed counts);
* ``"bm25"``   -- implicit's BM25 weighting of the summed matrix (``K1``, ``B``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import scipy.sparse as sp

SECONDS_PER_DAY = 86_400.0

#: default strength per event type: a purchase says more than putting in the cart, more than a view
DEFAULT_EVENT_WEIGHTS: dict[str, float] = {"view": 1.0, "click": 1.0, "wishlist": 2.0, "cart": 3.0, "purchase": 5.0}


def event_weights_for(
    event_type: Sequence[str] | np.ndarray, weights: Mapping[str, float] | None = None, default: float = 0.0
) -> np.ndarray:
    """Per-event base weight from the type names (unknown types get ``default``)."""
    table = DEFAULT_EVENT_WEIGHTS if weights is None else weights
    types = np.asarray(event_type)
    uniques, inverse = np.unique(types, return_inverse=True)
    lookup = np.array([float(table.get(str(t), default)) for t in uniques], dtype=np.float64)
    return lookup[inverse.ravel()]


def build_interactions(
    user_idx: np.ndarray,
    item_idx: np.ndarray,
    event_type: Sequence[str] | np.ndarray,
    timestamp: np.ndarray | None = None,
    value: np.ndarray | None = None,
    *,
    n_users: int | None = None,
    n_items: int | None = None,
    event_weights: Mapping[str, float] | None = None,
    half_life_days: float | None = None,
    now: float | None = None,
    confidence: str = "none",
    alpha: float = 1.0,
    epsilon: float = 1.0,
    bm25_k1: float = 100.0,
    bm25_b: float = 0.8,
) -> sp.csr_matrix:
    """Return a float32 CSR ``(n_users, n_items)`` weight matrix, summed per (user, item).

    ``timestamp`` is in seconds (any epoch); ``now`` defaults to the newest event, so that the same
    events always give the same matrix. ``value`` multiplies the weight (e.g. quantity); events
    with weight 0 (unknown type) are dropped.
    """
    users = np.asarray(user_idx, dtype=np.int64)
    items = np.asarray(item_idx, dtype=np.int64)
    w = event_weights_for(event_type, event_weights)
    if value is not None:
        w = w * np.asarray(value, dtype=np.float64)
    if half_life_days is not None:
        if timestamp is None:
            raise ValueError("half_life_days needs timestamps")
        ts = np.asarray(timestamp, dtype=np.float64)
        ref = float(ts.max(initial=0.0)) if now is None else float(now)
        w = w * np.exp2(-np.maximum(ref - ts, 0.0) / (float(half_life_days) * SECONDS_PER_DAY))
    n_users = int(users.max(initial=-1) + 1) if n_users is None else n_users
    n_items = int(items.max(initial=-1) + 1) if n_items is None else n_items
    keep = w != 0
    # coo -> csr sums duplicates, which is the dedupe we want.
    matrix = sp.coo_matrix((w[keep], (users[keep], items[keep])), shape=(n_users, n_items)).tocsr()
    matrix.sum_duplicates()
    matrix = apply_confidence(matrix, confidence, alpha=alpha, epsilon=epsilon, bm25_k1=bm25_k1, bm25_b=bm25_b)
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    matrix.sort_indices()
    return matrix


def apply_confidence(
    matrix: sp.csr_matrix,
    confidence: str,
    alpha: float = 1.0,
    epsilon: float = 1.0,
    bm25_k1: float = 100.0,
    bm25_b: float = 0.8,
) -> sp.csr_matrix:
    """Apply one of the confidence transforms listed in the module docstring to the stored values."""
    out = sp.csr_matrix(matrix, dtype=np.float64, copy=True)
    if confidence == "none":
        return out
    if confidence == "linear":
        out.data = 1.0 + alpha * out.data
    elif confidence == "log":
        out.data = 1.0 + alpha * np.log1p(out.data / epsilon)
    elif confidence == "bm25":
        from implicit.nearest_neighbours import bm25_weight  # why: implicit loads only when bm25 is asked for

        out = sp.csr_matrix(bm25_weight(out, K1=bm25_k1, B=bm25_b))
    else:
        raise ValueError(f"confidence must be none, linear, log or bm25; got {confidence!r}")
    return out
