"""Ranking and beyond-accuracy metrics, vectorised over users, returned per user.

Inputs:

* ``recs``: ``(n_users, K)`` int array of recommended item indices, best first, padded with ``-1``
  where fewer than ``K`` items were recommended. Padding never counts as a hit.
* ``relevant``: ``(n_users, n_items)`` sparse matrix; a nonzero marks a relevant item (binary
  relevance). Row ``u`` of ``relevant`` belongs to row ``u`` of ``recs``.

For a user with recommendation list ``r_1..r_K``, relevant set ``R`` (``|R| > 0``) and cutoff ``k``,
``rel_j = 1 if r_j in R else 0``:

* ``precision@k = sum_{j<=k} rel_j / k``  (denominator always ``k``, even for shorter lists)
* ``recall@k    = sum_{j<=k} rel_j / |R|``
* ``ndcg@k      = DCG@k / IDCG@k``, ``DCG@k = sum_{j<=k} rel_j / log2(j + 1)``,
  ``IDCG@k = sum_{j<=min(k,|R|)} 1 / log2(j + 1)``
* ``map@k``     = ``AP@k = sum_{j<=k} rel_j * precision@j / min(k, |R|)``
* ``hit_rate@k  = 1 if any rel_j (j <= k) else 0``
* ``mrr@k       = 1 / (first j <= k with rel_j = 1)``, 0 if none

Users with ``|R| = 0`` get ``NaN`` for every metric, and means are taken with ``np.nanmean`` (so
they are skipped). Evaluation only scores users with at least one relevant item anyway.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import scipy.sparse as sp

RANKING_METRICS = ("precision", "recall", "ndcg", "map", "hit_rate", "mrr")


def hits_matrix(recs: np.ndarray, relevant: sp.spmatrix) -> np.ndarray:
    """Boolean ``(n_users, K)``: is ``recs[u, j]`` in user ``u``'s relevant set (padding -> False)."""
    recs = np.asarray(recs, dtype=np.int64)
    rel = sp.csr_matrix(relevant)
    rel.eliminate_zeros()
    n_users, n_k = recs.shape
    if rel.shape[0] != n_users:
        raise ValueError(f"recs has {n_users} rows but relevant has {rel.shape[0]}")
    n_items = rel.shape[1]
    rel_rows = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(rel.indptr))
    rel_keys = np.sort(rel_rows * n_items + rel.indices.astype(np.int64))
    valid = (recs >= 0) & (recs < n_items)
    keys = np.arange(n_users, dtype=np.int64)[:, None] * n_items + np.where(valid, recs, 0)
    if len(rel_keys) == 0:
        return np.zeros((n_users, n_k), dtype=bool)
    pos = np.searchsorted(rel_keys, keys)
    found = rel_keys[np.minimum(pos, len(rel_keys) - 1)] == keys
    return found & valid


def ranking_metrics(recs: np.ndarray, relevant: sp.spmatrix, ks: Iterable[int] = (10,)) -> dict[str, np.ndarray]:
    """Per-user arrays for every metric in :data:`RANKING_METRICS` at every ``k``: keys ``"ndcg@10"``..."""
    recs = np.asarray(recs, dtype=np.int64)
    hits = hits_matrix(recs, relevant).astype(np.float64)
    # Count stored nonzeros only (a CSR may hold explicit zeros, which are not relevant).
    rel = sp.csr_matrix(relevant)
    rel.sum_duplicates()
    n_rel = np.asarray((rel != 0).sum(axis=1)).ravel().astype(np.float64)
    has_rel = n_rel > 0
    safe_rel = np.where(has_rel, n_rel, 1.0)
    out: dict[str, np.ndarray] = {}
    for k in ks:
        if k < 1:
            raise ValueError("k must be >= 1")
        h = hits[:, :k]
        if h.shape[1] < k:  # fewer columns than k: the missing ranks are misses
            h = np.hstack([h, np.zeros((h.shape[0], k - h.shape[1]))])
        ranks = np.arange(1, k + 1, dtype=np.float64)
        discount = 1.0 / np.log2(ranks + 1.0)
        n_hits = h.sum(axis=1)
        dcg = h @ discount
        ideal_len = np.minimum(n_rel, k).astype(np.int64)
        idcg = np.concatenate([[0.0], np.cumsum(discount)])[ideal_len]
        prec_at_j = np.cumsum(h, axis=1) / ranks
        ap = (h * prec_at_j).sum(axis=1) / np.maximum(np.minimum(n_rel, k), 1.0)
        first = np.where(h.any(axis=1), h.argmax(axis=1) + 1.0, np.inf)
        values = {
            "precision": n_hits / k,
            "recall": n_hits / safe_rel,
            "ndcg": np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0),
            "map": ap,
            "hit_rate": (n_hits > 0).astype(np.float64),
            "mrr": 1.0 / first,
        }
        for name, arr in values.items():
            out[f"{name}@{k}"] = np.where(has_rel, arr, np.nan)
    return out


# --- beyond accuracy ------------------------------------------------------------------------------
def exposure(recs: np.ndarray, n_items: int) -> np.ndarray:
    """How many lists each item appears in (padding ignored)."""
    flat = np.asarray(recs, dtype=np.int64).ravel()
    flat = flat[(flat >= 0) & (flat < n_items)]
    return np.bincount(flat, minlength=n_items)


def catalog_coverage(recs: np.ndarray, n_items: int) -> float:
    """Share of the catalog (``n_items``) recommended to at least one user."""
    return float((exposure(recs, n_items) > 0).sum() / max(n_items, 1))


def gini_index(counts: np.ndarray) -> float:
    """Gini index of an exposure distribution over all items (0 = uniform, (n-1)/n = one item).

    ``G = sum_i (2i - n - 1) x_(i) / (n * sum x)`` with ``x`` sorted ascending, ``i = 1..n``.
    """
    x = np.sort(np.asarray(counts, dtype=np.float64))
    n = len(x)
    total = x.sum()
    if n == 0 or total == 0:
        return 0.0
    i = np.arange(1, n + 1)
    return float(((2 * i - n - 1) * x).sum() / (n * total))


def item_popularity(train: sp.spmatrix) -> np.ndarray:
    """Number of distinct train users per item."""
    return np.asarray((sp.csr_matrix(train) != 0).sum(axis=0)).ravel().astype(np.float64)


def novelty(recs: np.ndarray, popularity: np.ndarray, n_users: int) -> np.ndarray:
    """Per-user mean self-information ``-log2 p(i)`` of the recommended items.

    ``p(i) = pop(i) / n_users`` is the share of train users who interacted with ``i``; ``pop`` is
    floored at 1 so never-seen items get the maximum ``log2(n_users)`` rather than infinity.
    Users with an empty list get ``NaN``.
    """
    recs = np.asarray(recs, dtype=np.int64)
    valid = recs >= 0
    p = np.maximum(popularity, 1.0) / max(n_users, 1)
    info = -np.log2(p)[np.where(valid, recs, 0)]
    n = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (info * valid).sum(axis=1) / n, np.nan)


def mean_popularity(recs: np.ndarray, popularity: np.ndarray) -> np.ndarray:
    """Per-user mean train popularity (distinct users) of the recommended items; NaN for empty lists."""
    recs = np.asarray(recs, dtype=np.int64)
    valid = recs >= 0
    pop = popularity[np.where(valid, recs, 0)]
    n = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (pop * valid).sum(axis=1) / n, np.nan)


def intra_list_diversity(recs: np.ndarray, item_vectors: sp.spmatrix | np.ndarray) -> np.ndarray:
    """Per-user mean over pairs ``j < l`` of ``1 - cos(v_{r_j}, v_{r_l})``.

    ``item_vectors`` is ``(n_items, d)``: item features, embeddings, or the train matrix's columns
    (``train.T``) for a collaborative notion of similarity. Zero vectors have cosine 0 with anything.
    Lists with fewer than two items get ``NaN``. Vectorised per rank pair, so cost is
    ``O(K^2 * n_users * nnz-per-row)`` and memory stays ``O(n_users)``.
    """
    recs = np.asarray(recs, dtype=np.int64)
    n_users, n_k = recs.shape
    if sp.issparse(item_vectors):
        v = sp.csr_matrix(item_vectors, dtype=np.float64)
        norms = np.sqrt(np.asarray(v.multiply(v).sum(axis=1)).ravel())
        v = sp.csr_matrix(sp.diags(np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)) @ v)
    else:
        v = np.asarray(item_vectors, dtype=np.float64)
        norms = np.linalg.norm(v, axis=1)
        v = v / np.where(norms > 0, norms, 1.0)[:, None]
    valid = recs >= 0
    safe = np.where(valid, recs, 0)
    total = np.zeros(n_users)
    pairs = np.zeros(n_users)
    rows = [v[safe[:, j]] for j in range(n_k)]
    for a in range(n_k):
        for b in range(a + 1, n_k):
            ok = valid[:, a] & valid[:, b]
            if sp.issparse(v):
                sim = np.asarray(rows[a].multiply(rows[b]).sum(axis=1)).ravel()
            else:
                sim = (rows[a] * rows[b]).sum(axis=1)
            total += np.where(ok, 1.0 - sim, 0.0)
            pairs += ok
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, total / pairs, np.nan)


def bootstrap_ci(
    values: np.ndarray, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of per-user values (NaNs dropped)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(n_resamples, len(x)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - confidence) / 2, 1 - (1 - confidence) / 2])
    return float(lo), float(hi)
