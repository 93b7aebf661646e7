"""Every ranking metric against hand-worked cases and an independent computation (sklearn, loops)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import ndcg_score

from shop_recs.recsys import metrics as mx


def rel_matrix(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    data, r, c = [], [], []
    for u, items in enumerate(rows):
        for i in items:
            r.append(u)
            c.append(i)
            data.append(1.0)
    return sp.csr_matrix((data, (r, c)), shape=(len(rows), n_items))


def reference(recs: list[int], relevant: set[int], k: int) -> dict[str, float]:
    """Loop-based implementations written straight from the definitions in metrics.py."""
    top = [i for i in recs[:k]]
    rel = [1.0 if (i >= 0 and i in relevant) else 0.0 for i in top] + [0.0] * (k - len(top))
    n_hits = sum(rel)
    dcg = sum(r / math.log2(j + 2) for j, r in enumerate(rel))
    idcg = sum(1 / math.log2(j + 2) for j in range(min(k, len(relevant))))
    ap, seen = 0.0, 0.0
    for j, r in enumerate(rel):
        if r:
            seen += 1
            ap += seen / (j + 1)
    first = next((j + 1 for j, r in enumerate(rel) if r), None)
    return {
        "precision": n_hits / k,
        "recall": n_hits / len(relevant),
        "ndcg": dcg / idcg,
        "map": ap / min(k, len(relevant)),
        "hit_rate": float(n_hits > 0),
        "mrr": 0.0 if first is None else 1.0 / first,
    }


def test_hand_worked_case():
    # relevant {1, 3}; list [1, 2, 3]; k = 3
    recs = np.array([[1, 2, 3]])
    out = mx.ranking_metrics(recs, rel_matrix([[1, 3]], 5), ks=[3])
    assert out["precision@3"][0] == pytest.approx(2 / 3)
    assert out["recall@3"][0] == pytest.approx(1.0)
    dcg = 1 + 1 / math.log2(4)
    idcg = 1 + 1 / math.log2(3)
    assert out["ndcg@3"][0] == pytest.approx(dcg / idcg)
    assert out["map@3"][0] == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert out["hit_rate@3"][0] == 1.0
    assert out["mrr@3"][0] == 1.0


def test_hand_worked_k1_and_miss_then_hit():
    recs = np.array([[4, 0, 2]])
    out = mx.ranking_metrics(recs, rel_matrix([[2]], 5), ks=[1, 3])
    assert out["precision@1"][0] == 0.0
    assert out["hit_rate@1"][0] == 0.0
    assert out["mrr@1"][0] == 0.0
    assert out["mrr@3"][0] == pytest.approx(1 / 3)
    assert out["ndcg@3"][0] == pytest.approx(1 / math.log2(4))  # ideal: the one item at rank 1
    assert out["map@3"][0] == pytest.approx(1 / 3)  # precision@3 / min(3, 1)
    assert out["recall@3"][0] == 1.0


def test_no_relevant_items_gives_nan_and_is_skipped_in_means():
    recs = np.array([[0, 1], [0, 1]])
    out = mx.ranking_metrics(recs, rel_matrix([[], [1]], 3), ks=[2])
    for name in mx.RANKING_METRICS:
        assert np.isnan(out[f"{name}@2"][0])
    assert np.nanmean(out["hit_rate@2"]) == 1.0


def test_padding_and_short_lists_are_misses():
    # Only two real recommendations, -1 padded; k = 5 > list length.
    recs = np.array([[3, -1, -1], [-1, -1, -1]])
    out = mx.ranking_metrics(recs, rel_matrix([[3, 4], [0]], 5), ks=[5])
    assert out["precision@5"][0] == pytest.approx(1 / 5)  # denominator k even for short lists
    assert out["recall@5"][0] == pytest.approx(1 / 2)
    assert out["ndcg@5"][0] == pytest.approx(1 / (1 + 1 / math.log2(3)))
    assert out["map@5"][0] == pytest.approx(1 / 2)
    # All padding: everything zero, and item 0 is not matched by the -1 -> 0 remap.
    for name in mx.RANKING_METRICS:
        assert out[f"{name}@5"][1] == 0.0


def test_random_lists_match_loop_reference_and_sklearn():
    rng = np.random.default_rng(7)
    n_users, n_items, n_k = 60, 40, 12
    recs = np.stack([rng.permutation(n_items)[:n_k] for _ in range(n_users)])
    recs[rng.random((n_users, n_k)) < 0.1] = -1  # sprinkle padding (and holes)
    relevant = [sorted(rng.choice(n_items, size=rng.integers(1, 15), replace=False).tolist()) for _ in range(n_users)]
    rel = rel_matrix(relevant, n_items)
    for k in (1, 5, 10):
        out = mx.ranking_metrics(recs, rel, ks=[k])
        for u in range(n_users):
            ref = reference(recs[u].tolist(), set(relevant[u]), k)
            for name, value in ref.items():
                assert out[f"{name}@{k}"][u] == pytest.approx(value), (u, name, k)
        # sklearn with full ranking: recommended items score highest, in order; every item left out
        # of the list scores below them, non-relevant ones above relevant ones so that short lists
        # count as misses (our definition) rather than as sklearn filling them with hits.
        for u in range(n_users):
            y_true = np.zeros((1, n_items))
            y_true[0, relevant[u]] = 1
            y_score = np.where(y_true[0] > 0, -2.0, -1.0)
            # a hole (-1) at rank j must still occupy rank j: fill holes with non-relevant fillers
            fillers = iter([i for i in range(n_items) if i not in relevant[u] and i not in recs[u]])
            for j in range(k):
                item = recs[u, j] if j < n_k and recs[u, j] >= 0 else next(fillers)
                y_score[item] = 100.0 - j
            expected = ndcg_score(y_true, y_score[None, :], k=k)
            assert out[f"ndcg@{k}"][u] == pytest.approx(expected), (u, k)


def test_sklearn_full_ranking_plain():
    rng = np.random.default_rng(0)
    scores = rng.random((20, 30))
    y_true = (rng.random((20, 30)) < 0.2).astype(float)
    y_true[:, 0] = 1  # everyone has at least one relevant item
    order = np.argsort(-scores, axis=1)
    out = mx.ranking_metrics(order[:, :10], sp.csr_matrix(y_true), ks=[10])
    expected = [ndcg_score(y_true[[u]], scores[[u]], k=10) for u in range(20)]
    np.testing.assert_allclose(out["ndcg@10"], expected)
    assert np.mean(out["ndcg@10"]) == pytest.approx(ndcg_score(y_true, scores, k=10))


def test_gini_extremes():
    assert mx.gini_index(np.full(10, 3)) == pytest.approx(0.0)
    one = np.zeros(10)
    one[4] = 7
    assert mx.gini_index(one) == pytest.approx(9 / 10)
    assert mx.gini_index(np.zeros(5)) == 0.0


def test_coverage_and_exposure_ignore_padding():
    recs = np.array([[0, 1, -1], [1, 2, -1]])
    assert mx.catalog_coverage(recs, 6) == pytest.approx(3 / 6)
    np.testing.assert_array_equal(mx.exposure(recs, 4), [1, 2, 1, 0])


def test_novelty_and_mean_popularity():
    pop = np.array([8.0, 4.0, 1.0, 0.0])
    recs = np.array([[0, 1], [2, 3], [-1, -1]])
    nov = mx.novelty(recs, pop, n_users=8)
    assert nov[0] == pytest.approx((0.0 + 1.0) / 2)  # -log2(8/8), -log2(4/8)
    assert nov[1] == pytest.approx((3.0 + 3.0) / 2)  # pop 0 floored at 1 -> -log2(1/8)
    assert np.isnan(nov[2])
    mp = mx.mean_popularity(recs, pop)
    assert mp[0] == 6.0 and mp[1] == 0.5 and np.isnan(mp[2])


def test_intra_list_diversity():
    # items 0,1 identical direction; item 2 orthogonal
    vec = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
    recs = np.array([[0, 1, -1], [0, 1, 2], [2, -1, -1]])
    ild = mx.intra_list_diversity(recs, vec)
    assert ild[0] == pytest.approx(0.0)
    assert ild[1] == pytest.approx((0 + 1 + 1) / 3)
    assert np.isnan(ild[2])
    np.testing.assert_allclose(mx.intra_list_diversity(recs, sp.csr_matrix(vec)), ild, equal_nan=True)


def test_bootstrap_ci_brackets_mean():
    x = np.random.default_rng(1).random(500)
    lo, hi = mx.bootstrap_ci(x, n_resamples=300)
    assert lo < x.mean() < hi
