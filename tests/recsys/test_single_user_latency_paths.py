"""The single-user fast path of ``recommend`` (issue #15) against dense numpy reference computations.

``recommend(user_id, row)`` for one user scores through ``_score_one`` (raw CSR arrays, no scipy
products). These tests rebuild each model's score with dense numpy from the fitted arrays and check
that the fast path returns the same top-N, that it agrees with the batch path, and that a saved and
reloaded model takes the same path to the same answer.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from shop_recs.recsys.base import NEG_INF, Recommender, top_k_stable
from shop_recs.recsys.content import ContentBased
from shop_recs.recsys.hybrid import Hybrid
from shop_recs.recsys.knn import ItemKNN, UserKNN
from shop_recs.recsys.popularity import MostPopular
from shop_recs.recsys.registry import load_model

N_USERS, N_ITEMS, N_TERMS = 80, 50, 40


def weighted_matrix(seed: int = 3) -> sp.csr_matrix:
    """Random interaction strengths in 0.5..3.5 (continuous, so no two scores tie by accident)."""
    rng = np.random.default_rng(seed)
    dense = (rng.random((N_USERS, N_ITEMS)) < 0.15) * rng.uniform(0.5, 3.5, (N_USERS, N_ITEMS))
    dense[5] = 0.0  # a user with no history
    dense[6] = 0.0
    dense[6, 7] = 2.0  # a user with a one-item history
    return sp.csr_matrix(dense.astype(np.float32))


def binary_matrix(seed: int = 4) -> sp.csr_matrix:
    """0/1 data: many users share a similarity, so the K-th neighbour is often a tie."""
    rng = np.random.default_rng(seed)
    return sp.csr_matrix((rng.random((N_USERS, N_ITEMS)) < 0.12).astype(np.float32))


def term_features(seed: int = 5) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = (rng.random((N_ITEMS, N_TERMS)) < 0.25) * rng.uniform(0.1, 1.0, (N_ITEMS, N_TERMS))
    dense[np.arange(N_ITEMS), np.arange(N_ITEMS) % N_TERMS] += 0.5  # every item has a term
    return sp.csr_matrix(dense)


def stable_top(values: np.ndarray, k: int) -> np.ndarray:
    """Reference tie rule: the k largest, equal values by lower position first."""
    return np.lexsort((np.arange(len(values)), -values))[:k]


def reference_recommend(scores: np.ndarray, history: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    scores = scores.astype(np.float64).copy()
    scores[history] = -np.inf
    order = stable_top(scores, n)
    order = order[np.isfinite(scores[order])]
    return order, scores[order]


def user_knn_reference(model: UserKNN, x: sp.csr_matrix, user: int) -> np.ndarray:
    dense = x.toarray().astype(np.float64)
    q = dense[user]
    dots = dense @ q
    norms = np.sqrt((dense**2).sum(axis=1))
    sims = np.where(dots != 0, dots / (np.sqrt(q @ q) * norms + model.shrink), 0.0)
    candidates = np.flatnonzero((dots != 0) & (np.arange(len(dots)) != user))
    best = candidates[stable_top(sims[candidates], model.K)]
    return sims[best] @ dense[best]


def content_reference(model: ContentBased, x: sp.csr_matrix, user: int) -> np.ndarray:
    tfidf = model.tfidf_.toarray().astype(np.float64)
    profile = x[user].toarray().ravel() @ tfidf
    terms = np.flatnonzero(profile)
    if model.profile_terms and len(terms) > model.profile_terms:
        terms = terms[stable_top(profile[terms], model.profile_terms)]
    trimmed = np.zeros_like(profile)
    trimmed[terms] = profile[terms]
    norm = np.sqrt(trimmed @ trimmed)
    return tfidf @ (trimmed / norm if norm > 0 else trimmed)


def minmax(scores: np.ndarray) -> np.ndarray:
    span = scores.max() - scores.min()
    return (scores - scores.min()) / span if span > 0 else np.zeros_like(scores)


def assert_same_top_n(model: Recommender, x: sp.csr_matrix, user: int, reference: np.ndarray, n: int = 10) -> None:
    """Same items in the same order wherever the reference order is unambiguous (an item whose score
    no other unseen item shares); items sharing a score (often 0, or one similarity reached through
    the same history item) are checked by value: same scores, and each item has the score returned."""
    ids, scores = model.recommend(user, x[user], N=n)
    ref_ids, ref_scores = reference_recommend(reference, x[user].indices, n)
    k = len(ref_ids)
    unseen = np.delete(reference, x[user].indices)
    unambiguous = np.array([np.sum(np.isclose(unseen, value, rtol=1e-6, atol=1e-9)) == 1 for value in ref_scores])
    np.testing.assert_array_equal(ids[:k][unambiguous], ref_ids[unambiguous], err_msg=f"user {user}")
    np.testing.assert_allclose(scores[:k], ref_scores, rtol=1e-5, atol=1e-6, err_msg=f"user {user}")
    np.testing.assert_allclose(reference[ids[:k]], scores[:k], rtol=1e-5, atol=1e-6, err_msg=f"user {user}")
    assert not set(ids[:k].tolist()) & set(x[user].indices.tolist())
    assert np.all(ids[k:] == -1) and np.all(np.isneginf(scores[k:]))


def assert_same_top_n_up_to_ties(model: Recommender, x: sp.csr_matrix, user: int, reference: np.ndarray) -> None:
    """On 0/1 data several items can share the N-th score: the score list must match and every
    returned item must have the score returned for it."""
    ids, scores = model.recommend(user, x[user], N=10)
    ref_ids, ref_scores = reference_recommend(reference, x[user].indices, 10)
    k = len(ref_ids)
    np.testing.assert_allclose(scores[:k], ref_scores, rtol=1e-5, atol=1e-6, err_msg=f"user {user}")
    np.testing.assert_allclose(reference[ids[:k]], scores[:k], rtol=1e-5, atol=1e-6)
    assert not set(ids[:k].tolist()) & set(x[user].indices.tolist())


# --- user_knn ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [3, 100])
def test_user_knn_fast_path_matches_dense_reference(k: int) -> None:
    x = weighted_matrix()
    model = UserKNN(K=k, shrink=2.0).fit(x)
    for user in range(N_USERS):
        assert_same_top_n(model, x, user, user_knn_reference(model, x, user))


def test_user_knn_ties_at_the_kth_neighbour_keep_the_lower_user_index() -> None:
    x = binary_matrix()
    model = UserKNN(K=4, shrink=1.0).fit(x)
    n_tied_cuts = 0
    for user in range(N_USERS):
        reference = user_knn_reference(model, x, user)
        fast = model._score_one(user, x[user].indices.astype(np.int64), x[user].data)
        np.testing.assert_allclose(fast, reference, rtol=1e-5, atol=1e-6, err_msg=f"user {user}")
        # The batch path uses the same tie rule, so both give the same scores.
        np.testing.assert_allclose(model.score_users(np.array([user]), x[user])[0], fast, rtol=1e-5, atol=1e-6)
        assert_same_top_n_up_to_ties(model, x, user, reference)
        q = x[user].toarray().ravel()
        dots = x.toarray() @ q
        n_tied_cuts += int(np.sum(dots[np.arange(N_USERS) != user] > 0) > 4)
    assert n_tied_cuts > 10  # the cut at K really was exercised


def test_user_knn_new_user_and_full_matrix_input() -> None:
    x = weighted_matrix()
    model = UserKNN(K=5, shrink=2.0).fit(x)
    # A brand-new user (id beyond the training users) with a history of their own.
    row = sp.csr_matrix(([1.0, 2.0, 1.5], ([0, 0, 0], [1, 4, 9])), shape=(1, N_ITEMS), dtype=np.float32)
    ids, _ = model.recommend(N_USERS + 7, row, N=5)
    dense = np.vstack([x.toarray(), row.toarray()]).astype(np.float64)
    extended = sp.csr_matrix(dense.astype(np.float32))
    reference = user_knn_reference(model, extended, N_USERS)
    np.testing.assert_array_equal(ids, reference_recommend(reference, row.indices, 5)[0])
    # Given the whole matrix, recommend picks the user's row, like the batch path.
    for user in (0, 11, 42):
        np.testing.assert_array_equal(model.recommend(user, x, N=6)[0], model.recommend(user, x[user], N=6)[0])


# --- content ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("profile_terms", [3, 0])
def test_content_fast_path_matches_dense_reference(profile_terms: int) -> None:
    x = weighted_matrix()
    model = ContentBased(K=5, profile_terms=profile_terms).fit(x, item_features=term_features())
    for user in range(N_USERS):
        if user == 5:
            continue  # no history: every score is 0 (checked below)
        assert_same_top_n(model, x, user, content_reference(model, x, user))
    ids, scores = model.recommend(5, x[5], N=3)
    assert np.all(scores == 0) and len(set(ids.tolist())) == 3


def test_content_trimming_ties_keep_the_lower_term_index() -> None:
    # Items 0 and 1 carry four terms of equal weight; trimming a profile of both to 2 terms keeps
    # terms 0 and 1 (the lower indices), so item 2 (terms 0, 1) beats item 3 (terms 2, 3).
    features = np.zeros((6, 6))
    features[0, [0, 1, 2, 3]] = 1.0
    features[1, [0, 1, 2, 3]] = 1.0
    features[2, [0, 1]] = 1.0
    features[3, [2, 3]] = 1.0
    features[4, 4] = 1.0
    features[5, 5] = 1.0
    x = sp.csr_matrix(np.array([[1, 1, 0, 0, 0, 0]] * 3, dtype=np.float32))
    model = ContentBased(K=3, profile_terms=2).fit(x, item_features=sp.csr_matrix(features))
    ids, scores = model.recommend(0, x[0], N=2)
    assert ids[0] == 2 and scores[0] > scores[1]
    batch_ids, _ = model.recommend(np.array([0]), x[[0]], N=2)
    np.testing.assert_array_equal(batch_ids[0], ids)


# --- item_knn, popularity, hybrid -----------------------------------------------------------------


def test_item_knn_fast_path_matches_dense_reference() -> None:
    x = weighted_matrix()
    model = ItemKNN(K=6, shrink=1.0).fit(x)  # binary input scaling by default
    sim = model.similarity_.toarray().astype(np.float64)
    for user in range(N_USERS):
        assert_same_top_n(model, x, user, (x[user].toarray().ravel() > 0) @ sim)
    raw = ItemKNN(K=6, shrink=1.0, input_scaling="log").fit(x)
    sim = raw.similarity_.toarray().astype(np.float64)
    for user in (0, 1, 2):
        assert_same_top_n(raw, x, user, np.log1p(x[user].toarray().ravel()) @ sim)


def make_hybrid(x: sp.csr_matrix) -> Hybrid:
    members = {
        "item_knn": ItemKNN(K=6, shrink=1.0).fit(x),
        "content": ContentBased(K=5, profile_terms=4).fit(x, item_features=term_features()),
        "popularity": MostPopular().fit(x),
    }
    return Hybrid.from_models(members, {"item_knn": 1.0, "content": 0.3, "popularity": 0.05})


def test_hybrid_fast_path_matches_dense_reference() -> None:
    x = weighted_matrix()
    model = make_hybrid(x)
    knn_sim = model.models_["item_knn"].similarity_.toarray().astype(np.float64)
    popularity = model.models_["popularity"].popularity_.astype(np.float64)
    for user in range(N_USERS):
        history = x[user].indices
        if len(history) == 0:
            reference = minmax(popularity)  # cold user: the popularity order only
        else:
            boost = 3.0 if len(history) < model.thin_history else 1.0
            reference = (
                minmax((x[user].toarray().ravel() > 0) @ knn_sim)
                + 0.3 * boost * minmax(content_reference(model.models_["content"], x, user))
                + 0.05 * minmax(popularity)
            )
        assert_same_top_n(model, x, user, reference)


def test_hybrid_member_without_fast_path_is_scored_through_its_batch_path() -> None:
    x = weighted_matrix()

    class BatchOnly(MostPopular):
        """Popularity that only implements the batch scoring (like a model without a fast path)."""

        def _score_one(self, user_id: int, items: np.ndarray, values: np.ndarray) -> None:
            return None

    hybrid = Hybrid.from_models(
        {"item_knn": ItemKNN(K=6, shrink=1.0).fit(x), "popularity": BatchOnly().fit(x)},
        {"item_knn": 1.0, "popularity": 0.05},
    )
    for user in (0, 5, 6, 30):
        single = hybrid.recommend(user, x[user], N=8)
        batch = hybrid.recommend(np.array([user]), x[[user]], N=8)
        np.testing.assert_array_equal(single[0], batch[0][0])
        np.testing.assert_allclose(single[1], batch[1][0], rtol=1e-6)


@pytest.mark.parametrize(
    "make",
    [
        lambda x: UserKNN(K=5, shrink=2.0).fit(x),
        lambda x: ContentBased(K=5, profile_terms=4).fit(x, item_features=term_features()),
        lambda x: ItemKNN(K=6, shrink=1.0).fit(x),
        lambda x: MostPopular().fit(x),
        make_hybrid,
    ],
    ids=["user_knn", "content", "item_knn", "popularity", "hybrid"],
)
def test_fast_path_agrees_with_batch_path_and_survives_a_save_load(make, tmp_path) -> None:
    x = weighted_matrix()
    model = make(x)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = load_model(path)
    assert type(loaded) is type(model)
    for user in range(N_USERS):
        single_ids, single_scores = model.recommend(user, x[user], N=10)
        batch_ids, batch_scores = model.recommend(np.array([user]), x[[user]], N=10)
        np.testing.assert_array_equal(single_ids, batch_ids[0], err_msg=f"user {user}")
        np.testing.assert_allclose(single_scores, batch_scores[0], rtol=1e-5, atol=1e-6)
        loaded_ids, loaded_scores = loaded.recommend(user, x[user], N=10)
        np.testing.assert_array_equal(loaded_ids, single_ids)
        np.testing.assert_allclose(loaded_scores, single_scores, rtol=1e-6)


def test_filters_match_the_batch_path() -> None:
    x = weighted_matrix()
    model = UserKNN(K=5, shrink=2.0).fit(x)
    user = 0
    # Without the seen-item filter, history items come back (user 0's own items score highly).
    ids, _ = model.recommend(user, x[user], N=N_ITEMS, filter_already_liked_items=False)
    assert set(x[user].indices.tolist()) & set(ids.tolist())
    # ``items`` restricts the candidates; everything else is -inf and padded with -1.
    allowed = np.array([2, 3, 40])
    ids, scores = model.recommend(user, x[user], N=5, items=allowed)
    assert set(ids[ids >= 0].tolist()) <= set(allowed.tolist())
    assert np.all(ids[3:] == -1) and np.all(scores[3:] == NEG_INF)
    # An explicitly stored zero is not a seen item (rows.nonzero() skips it in the batch path).
    row = sp.csr_matrix((np.array([1.0, 0.0], np.float32), np.array([1, 8]), np.array([0, 2])), shape=(1, N_ITEMS))
    single = model.recommend(N_USERS + 1, row, N=N_ITEMS)
    batch = model.recommend(np.array([N_USERS + 1]), row, N=N_ITEMS)
    np.testing.assert_array_equal(single[0], batch[0][0])
    assert 1 not in single[0]


# --- helpers and edge cases -------------------------------------------------------------------------


@pytest.mark.parametrize("n, k, distinct", [(5000, 10, 7), (5000, 100, 40), (20000, 100, 100_000), (300, 100, 5)])
def test_top_k_stable_matches_a_stable_sort(n: int, k: int, distinct: int) -> None:
    # Few distinct values (as with 0/1 data) put many ties at the cut; -inf entries are never chosen.
    rng = np.random.default_rng(n + k)
    values = rng.integers(0, distinct, n).astype(np.float64) / 7.0
    values[rng.random(n) < 0.3] = -np.inf
    finite = np.flatnonzero(np.isfinite(values))
    expected = finite[stable_top(values[finite], k)]
    np.testing.assert_array_equal(top_k_stable(values, k), expected)


def test_top_k_stable_when_almost_everything_is_minus_infinity() -> None:
    values = np.full(10_000, -np.inf)
    values[[17, 4000, 9999]] = [0.5, 2.0, 0.5]
    np.testing.assert_array_equal(top_k_stable(values, 100), [4000, 17, 9999])


def test_negative_and_out_of_range_user_ids_behave_like_the_batch_path() -> None:
    x = weighted_matrix()
    model = UserKNN(K=5, shrink=2.0).fit(x)
    single = model.recommend(-1, x, N=5)
    batch = model.recommend(np.array([-1]), x, N=5)
    np.testing.assert_array_equal(single[0], batch[0][0])
    with pytest.raises(IndexError):
        model.recommend(N_USERS + 3, x, N=5)


def test_content_refit_on_the_same_shape_rebuilds_the_dense_term_rows() -> None:
    x = weighted_matrix()
    model = ContentBased(K=5).fit(x, item_features=term_features(seed=5))
    model.fit(x, item_features=term_features(seed=9))
    fresh = ContentBased(K=5).fit(x, item_features=term_features(seed=9))
    for user in (0, 1, 2):
        np.testing.assert_allclose(
            model._score_one(user, x[user].indices.astype(np.int64), x[user].data),
            fresh._score_one(user, x[user].indices.astype(np.int64), x[user].data),
        )
    assert model._common_terms()[1].shape[0] > 0  # the dense path was exercised
