"""Edge cases of shop_recs/recsys/metrics.py: degenerate inputs, exact boundaries, error messages.

Expected values are worked by hand (in the comments) or from scipy / an independent resample; none is
taken from the code under test. These were the surviving mutants of `benchmarks/mutation.py --only
metrics` (docs/benchmarks.md, "Mutation testing").
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from scipy import stats as sps

from shop_recs.recsys import metrics as mx


def csr_with_explicit_zeros(data: list[float], indices: list[int], indptr: list[int], shape) -> sp.csr_matrix:
    """A CSR built from its arrays, so stored zeros stay stored."""
    m = sp.csr_matrix((np.array(data, dtype=float), np.array(indices), np.array(indptr)), shape=shape)
    assert m.nnz == len(data)
    return m


# --- hits_matrix / ranking_metrics ----------------------------------------------------------------
def test_hits_matrix_row_mismatch_message():
    with pytest.raises(ValueError, match=r"^recs has 2 rows but relevant has 3$"):
        mx.hits_matrix(np.zeros((2, 1), dtype=int), sp.csr_matrix((3, 4)))


def test_ranking_metrics_bad_k_message():
    rel = sp.csr_matrix(np.array([[1.0, 0.0]]))
    for k in (0, -1):
        with pytest.raises(ValueError, match=r"^k must be >= 1$"):
            mx.ranking_metrics(np.array([[0]]), rel, ks=(k,))


def test_ranking_metrics_k_one_is_accepted():
    out = mx.ranking_metrics(np.array([[0, 1]]), sp.csr_matrix(np.array([[1.0, 0.0]])), ks=(1,))
    assert out["precision@1"].tolist() == [1.0]
    assert out["ndcg@1"].tolist() == [1.0]


def test_item_id_equal_to_n_items_is_not_a_hit():
    # n_items = 2. User 0 is recommended id 2 (out of range); user 1's relevant item is 0. With the
    # flat key u * n_items + i, id 2 of user 0 would collide with item 0 of user 1.
    relevant = sp.csr_matrix(np.array([[0.0, 0.0], [1.0, 0.0]]))
    got = mx.hits_matrix(np.array([[2], [0]]), relevant)
    assert got.tolist() == [[False], [True]]


def test_hits_matrix_without_any_relevant_item():
    got = mx.hits_matrix(np.array([[0, 1, -1], [2, 1, 0]]), sp.csr_matrix((2, 3)))
    assert got.dtype == np.bool_
    assert got.shape == (2, 3)
    assert not got.any()


def test_hits_matrix_only_explicit_zeros_is_empty():
    relevant = csr_with_explicit_zeros([0.0, 0.0], [0, 1], [0, 1, 2], (2, 2))
    got = mx.hits_matrix(np.array([[0, 1], [1, 0]]), relevant)
    assert got.dtype == np.bool_ and got.shape == (2, 2) and not got.any()


def test_hits_matrix_single_relevant_item():
    relevant = sp.csr_matrix(np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))
    got = mx.hits_matrix(np.array([[2, 0], [1, 2]]), relevant)
    assert got.tolist() == [[False, False], [False, True]]


# --- exposure / coverage --------------------------------------------------------------------------
def test_exposure_ignores_ids_at_or_beyond_n_items():
    got = mx.exposure(np.array([[2, 0], [1, -1], [5, 0]]), 2)
    assert got.tolist() == [2, 1]
    assert len(got) == 2


def test_catalog_coverage_one_item_catalog():
    assert mx.catalog_coverage(np.array([[0]]), 1) == 1.0
    assert mx.catalog_coverage(np.array([[-1]]), 1) == 0.0


def test_catalog_coverage_empty_catalog():
    assert mx.catalog_coverage(np.zeros((1, 0), dtype=int), 0) == 0.0


# --- item_popularity ------------------------------------------------------------------------------
def test_item_popularity_counts_distinct_users_not_zeros():
    # users x items; user 1 has an explicit stored zero on item 0 (not an interaction),
    # user 0 has 3 interactions with item 2 (one user).
    train = csr_with_explicit_zeros([1.0, 3.0, 0.0, 2.0, 5.0], [0, 2, 0, 2, 0], [0, 2, 4, 5], (3, 4))
    got = mx.item_popularity(train)
    assert got.dtype == np.float64
    assert got.tolist() == [2.0, 0.0, 2.0, 0.0]


def test_item_popularity_empty_train():
    assert mx.item_popularity(sp.csr_matrix((2, 3))).tolist() == [0.0, 0.0, 0.0]


# --- novelty / mean_popularity --------------------------------------------------------------------
POP = np.array([1.0, 2.0, 4.0])  # with 4 train users: p = 1/4, 1/2, 1 -> self-information 2, 1, 0 bits


def test_novelty_one_item_and_padded_lists():
    recs = np.array([[0, -1, -1], [0, 1, -1], [-1, -1, -1], [2, 1, 0]])
    got = mx.novelty(recs, POP, 4)
    assert got[:2].tolist() == [2.0, 1.5]
    assert math.isnan(got[2])
    assert got[3] == pytest.approx(1.0)


def test_novelty_single_train_user():
    # n_users = 1: every item has p = 1 (popularity floored at 1), so 0 bits
    assert mx.novelty(np.array([[0]]), np.array([1.0]), 1).tolist() == [0.0]
    assert mx.novelty(np.array([[0]]), np.array([0.0]), 1).tolist() == [0.0]


def test_novelty_padding_over_a_one_item_catalog():
    # 4 users, item 0 seen by 1: -log2(1/4) = 2; the padding must not index a second item
    assert mx.novelty(np.array([[0, -1], [-1, -1]]), np.array([1.0]), 4)[0] == 2.0


def test_mean_popularity_one_item_and_padded_lists():
    recs = np.array([[0, -1, -1], [0, 1, -1], [-1, -1, -1], [2, 1, 0]])
    got = mx.mean_popularity(recs, POP)
    assert got[:2].tolist() == [1.0, 1.5]
    assert math.isnan(got[2])
    assert got[3] == pytest.approx(7 / 3)


def test_mean_popularity_padding_over_a_one_item_catalog():
    assert mx.mean_popularity(np.array([[0, -1]]), np.array([3.0])).tolist() == [3.0]


# --- intra_list_diversity -------------------------------------------------------------------------
def test_diversity_dense_zero_and_short_vectors():
    # item 0 = zero vector (cosine 0 with anything), 1 = [0.5, 0] and 2 = [2, 0] (same direction:
    # cosine 1 whatever the norms), 3 = [0, 3] (orthogonal to 1 and 2).
    v = np.array([[0.0, 0.0], [0.5, 0.0], [2.0, 0.0], [0.0, 3.0]])
    got = mx.intra_list_diversity(np.array([[0, 1], [1, 2], [1, 3], [0, 0]]), v)
    assert got.tolist() == [1.0, 0.0, 1.0, 1.0]


def test_diversity_sparse_explicit_zero_row():
    # item 0 = [1, 0]; item 1 stores an explicit 0 (a zero vector); item 2 = [0, 2]; item 3 = [3, 0].
    # pairs of [0, 1, 2, 3]: (0,1) 1, (0,2) 1, (0,3) 0, (1,2) 1, (1,3) 1, (2,3) 1 -> 5/6
    v = csr_with_explicit_zeros([1.0, 0.0, 2.0, 3.0], [0, 0, 1, 0], [0, 1, 2, 3, 4], (4, 2))
    got = mx.intra_list_diversity(np.array([[0, 1, 2, 3], [1, 1, -1, -1], [3, 0, -1, -1]]), v)
    assert got.tolist() == pytest.approx([5 / 6, 1.0, 0.0])
    assert not np.isnan(got).any()


def test_diversity_sparse_equals_dense():
    dense = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 0.0], [0.0, 1.0, 1.0], [3.0, 0.0, 4.0]])
    recs = np.array([[0, 1, 2], [1, 2, 3], [3, -1, 1], [2, -1, -1]])
    sparse = mx.intra_list_diversity(recs, sp.csr_matrix(dense))
    ref = mx.intra_list_diversity(recs, dense)
    # by hand for user 1: cos(1,2) = 2/sqrt(10), cos(1,3) = 3/(sqrt(5)·5), cos(2,3) = 4/(sqrt(2)·5)
    by_hand = 1 - (2 / math.sqrt(10) + 3 / (math.sqrt(5) * 5) + 4 / (math.sqrt(2) * 5)) / 3
    assert sparse[1] == pytest.approx(by_hand)
    assert np.allclose(sparse[:3], ref[:3])
    assert math.isnan(sparse[3]) and math.isnan(ref[3])


def test_diversity_padding_over_a_one_item_catalog():
    got = mx.intra_list_diversity(np.array([[0, -1]]), np.array([[1.0, 0.0]]))
    assert math.isnan(got[0])
    got = mx.intra_list_diversity(np.array([[0, -1]]), sp.csr_matrix(np.array([[1.0, 0.0]])))
    assert math.isnan(got[0])


# --- bootstrap_ci ---------------------------------------------------------------------------------
def test_bootstrap_no_values():
    for values in ([], [np.nan], [np.nan, np.nan]):
        lo, hi = mx.bootstrap_ci(np.array(values, dtype=float))
        assert math.isnan(lo) and math.isnan(hi)


def test_bootstrap_single_value_and_nans_dropped():
    assert mx.bootstrap_ci(np.array([5.0])) == (5.0, 5.0)
    assert mx.bootstrap_ci(np.array([np.nan, 5.0, np.nan])) == (5.0, 5.0)


def test_bootstrap_same_seed_same_interval():
    x = np.array([0.1, 0.9, 0.4, 0.0, 1.0, 0.3, 0.7])
    assert mx.bootstrap_ci(x, seed=3) == mx.bootstrap_ci(x, seed=3)
    assert mx.bootstrap_ci(x) == mx.bootstrap_ci(x)


def test_bootstrap_two_values_reaches_both_ends():
    # resample means of [1, 0] are 1 with probability 1/4: the 97.5% quantile of 1000 is exactly 1
    assert mx.bootstrap_ci(np.array([1.0, 0.0])) == (0.0, 1.0)


def test_bootstrap_is_the_percentile_interval_of_seeded_resamples():
    # The documented procedure: default_rng(seed), n_resamples resamples with replacement, the
    # (1 - confidence)/2 and 1 - (1 - confidence)/2 quantiles of their means.
    x = np.array([0.0, 1.0, 0.5, 0.25, 0.0, 1.0, 0.8, 0.1, np.nan])
    clean = x[~np.isnan(x)]
    for n_res, conf, seed in ((1000, 0.95, 0), (400, 0.8, 5)):
        idx = np.random.default_rng(seed).integers(0, len(clean), size=(n_res, len(clean)))
        means = clean[idx].mean(axis=1)
        a = (1 - conf) / 2
        expected = (np.quantile(means, a), np.quantile(means, 1 - a))
        got = mx.bootstrap_ci(x, n_resamples=n_res, confidence=conf, seed=seed)
        assert got == (pytest.approx(expected[0]), pytest.approx(expected[1]))


def test_bootstrap_levels_agree_with_scipy():
    x = np.random.default_rng(2).exponential(1.0, 300)
    for conf in (0.95, 0.8):
        lo, hi = mx.bootstrap_ci(x, n_resamples=20000, confidence=conf)
        ref = sps.bootstrap(
            (x,), np.mean, n_resamples=20000, confidence_level=conf, method="percentile", random_state=1
        ).confidence_interval
        half = (ref.high - ref.low) / 2
        assert lo == pytest.approx(ref.low, abs=0.03 * half)
        assert hi == pytest.approx(ref.high, abs=0.03 * half)
