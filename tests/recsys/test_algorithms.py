"""Every algorithm on a tiny matrix whose right answer is known (after implicit's checkerboard test).

Two disjoint groups: users 0-9 like items 0-4, users 10-19 like items 5-9. Each user misses exactly one
item of their own group, so a personalised model must recommend that item first.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from shop_recs.recsys.base import Recommender
from shop_recs.recsys.content import ContentBased
from shop_recs.recsys.ease import EASE
from shop_recs.recsys.hybrid import Hybrid
from shop_recs.recsys.knn import ItemKNN, UserKNN
from shop_recs.recsys.mf import ALS, BPR, PureSVD
from shop_recs.recsys.popularity import MostPopular, Trending
from shop_recs.recsys.registry import ALGORITHMS, DEFAULT_GRIDS, grid, load_model, make
from shop_recs.recsys.rp3beta import RP3beta

N_USERS, N_ITEMS, GROUP = 20, 10, 5


def group_matrix() -> sp.csr_matrix:
    dense = np.zeros((N_USERS, N_ITEMS), dtype=np.float32)
    for u in range(N_USERS):
        start = 0 if u < N_USERS // 2 else GROUP
        dense[u, start : start + GROUP] = 1.0
        dense[u, held_out(u)] = 0.0
    return sp.csr_matrix(dense)


def held_out(user: int) -> int:
    return (0 if user < N_USERS // 2 else GROUP) + user % GROUP


def group_of_item(item: int) -> int:
    return int(item >= GROUP)


DOCS = [
    {"title": f"red leather shoe {i}", "description": "running shoe", "category": "Shoes", "brand": "Acme"}
    if i < GROUP
    else {"title": f"blue phone {i}", "description": "battery charger", "category": "Phones", "brand": "Zed"}
    for i in range(N_ITEMS)
]
CATEGORIES = np.array([0] * GROUP + [1] * GROUP)


class RecommenderContract:
    """Shared checks; subclasses provide ``make_model``."""

    personalised = True

    def make_model(self) -> Recommender:
        raise NotImplementedError

    def fitted(self) -> Recommender:
        return self.make_model().fit(group_matrix(), item_features=DOCS, item_categories=CATEGORIES)

    def test_recommends_held_out_item_of_own_group(self) -> None:
        if not self.personalised:
            pytest.skip("not a personalised model")
        model, x = self.fitted(), group_matrix()
        for user in (0, 3, 12, 19):
            ids, _ = model.recommend(user, x, N=1)
            assert ids[0] == held_out(user), (user, ids)

    def test_excludes_seen_items(self) -> None:
        model, x = self.fitted(), group_matrix()
        ids, _ = model.recommend(np.arange(N_USERS), x, N=5)
        for user in range(N_USERS):
            assert not set(ids[user]) & set(x[user].indices)

    def test_single_and_batch_shapes(self) -> None:
        model, x = self.fitted(), group_matrix()
        ids, scores = model.recommend(2, x[2], N=3)
        assert ids.shape == (3,) and scores.shape == (3,)
        ids, scores = model.recommend(np.array([1, 2, 15]), x[[1, 2, 15]], N=3)
        assert ids.shape == (3, 3) and scores.shape == (3, 3)
        assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first

    def test_pads_when_n_exceeds_available(self) -> None:
        model, x = self.fitted(), group_matrix()
        ids, scores = model.recommend(0, x, N=N_ITEMS + 3)
        n_unseen = N_ITEMS - x[0].nnz
        assert np.all(ids[n_unseen:] == -1) and np.all(np.isneginf(scores[n_unseen:]))
        assert len(set(ids[:n_unseen])) == n_unseen and np.all(ids[:n_unseen] >= 0)

    def test_items_restricts_candidates(self) -> None:
        model, x = self.fitted(), group_matrix()
        ids, _ = model.recommend(0, x, N=2, items=np.array([6, 8]))
        assert set(ids) <= {6, 8}

    def test_similar_items_same_group_without_itself(self) -> None:
        model = self.fitted()
        ids, _ = model.similar_items(1, N=3)
        assert 1 not in ids
        if self.personalised or isinstance(model, MostPopular):
            assert all(group_of_item(i) == 0 for i in ids), ids
        ids, _ = model.similar_items(np.array([1, 7]), N=3)
        assert ids.shape == (2, 3) and 7 not in ids[1]

    def test_save_load_round_trip(self, tmp_path) -> None:
        model, x = self.fitted(), group_matrix()
        path = tmp_path / "model.npz"
        model.save(path)
        for loaded in (type(model).load(path), load_model(path)):
            assert type(loaded) is type(model)
            users = np.arange(N_USERS)
            np.testing.assert_array_equal(model.recommend(users, x, N=4)[0], loaded.recommend(users, x, N=4)[0])
            np.testing.assert_allclose(model.recommend(users, x, N=4)[1], loaded.recommend(users, x, N=4)[1])

    def test_get_params_round_trip(self) -> None:
        model = self.make_model()
        clone = type(model)(**model.get_params())
        assert clone.get_params() == model.get_params()
        assert make(model.name, **model.get_params()).get_params() == model.get_params()

    def test_deterministic(self) -> None:
        x = group_matrix()
        a, b = self.fitted(), self.fitted()
        np.testing.assert_array_equal(
            a.recommend(np.arange(N_USERS), x, N=5)[0], b.recommend(np.arange(N_USERS), x, N=5)[0]
        )


class TestMostPopular(RecommenderContract):
    personalised = False

    def make_model(self) -> Recommender:
        return MostPopular()

    def test_order_and_category(self) -> None:
        x = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 0, 0]], dtype=np.float32))
        model = MostPopular().fit(x, item_categories=np.array([0, 1, 1, 1]))
        ids, _ = model.recommend(0, sp.csr_matrix((1, 4)), N=4)
        assert list(ids) == [0, 1, 2, 3]  # zero-interaction item 3 still reachable, last
        ids, _ = model.recommend_in_category(1, N=5)
        assert list(ids) == [1, 2, 3, -1, -1]
        ids, _ = model.recommend_in_category(1, N=2, user_items=x[[0]])
        assert list(ids) == [2, 3]


class TestTrending(RecommenderContract):
    personalised = False

    def make_model(self) -> Recommender:
        return Trending(half_life_days=7)

    def test_recent_beats_old(self) -> None:
        day = 86_400.0
        # item 0: 3 interactions 28 days ago (4 half-lives -> 3/16); item 1: 1 interaction today.
        x = sp.csr_matrix(np.array([[1, 0], [1, 0], [1, 1]], dtype=np.float32))
        ts = np.array([0.0, 0.0, 0.0, 28 * day])  # aligned with x.data (row-major)
        model = Trending(half_life_days=7).fit(x, timestamps=ts)
        np.testing.assert_allclose(model.popularity_, [3 / 16, 1.0], atol=1e-5)
        assert MostPopular().fit(x).recommend(0, sp.csr_matrix((1, 2)), N=1)[0][0] == 0
        assert model.recommend(0, sp.csr_matrix((1, 2)), N=1)[0][0] == 1
        model = Trending(half_life_days=7).fit(x, item_timestamps=np.array([0.0, 28 * day]))
        np.testing.assert_allclose(model.popularity_, [3 / 16, 1.0], atol=1e-5)


class TestItemKNN(RecommenderContract):
    def make_model(self) -> Recommender:
        return ItemKNN(K=4, shrink=2.0)

    def test_shrinkage_formula(self) -> None:
        x = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 1], [2, 1, 0], [0, 1, 1]], dtype=np.float32))
        plain = ItemKNN(K=2, shrink=0, input_scaling="raw").fit(x).similarity_.toarray()
        shrunk = ItemKNN(K=2, shrink=5.0, input_scaling="raw").fit(x).similarity_.toarray()
        n0, n1 = np.sqrt(1 + 1 + 4), np.sqrt(1 + 1 + 1)
        dot01 = 1 * 1 + 2 * 1
        assert plain[0, 1] == pytest.approx(dot01 / (n0 * n1), rel=1e-5)
        assert shrunk[0, 1] == pytest.approx(dot01 / (n0 * n1 + 5.0), rel=1e-5)
        assert plain[0, 0] == 0 and shrunk[1, 1] == 0

    def test_shrunk_top_k_is_exact(self) -> None:
        rng = np.random.default_rng(0)
        x = sp.random(300, 60, density=0.08, random_state=rng, format="csr", dtype=np.float32)
        x.data[:] = 1.0
        for oversample in (1.0, 2.0):  # 1.0 forces the exact recomputation path
            sim = ItemKNN(K=5, shrink=10.0, oversample=oversample, exact=True).fit(x).similarity_.toarray()
            norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
            brute = (x.T @ x).toarray() / (np.outer(norms, norms) + 10.0)
            np.fill_diagonal(brute, 0.0)
            for row in range(60):
                want = np.sort(brute[row])[::-1][:5]
                got = np.sort(sim[row])[::-1][:5]
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)

    def test_default_approximate_mode_keeps_true_shrunk_values_of_fetched_candidates(self) -> None:
        rng = np.random.default_rng(1)
        x = sp.random(300, 60, density=0.08, random_state=rng, format="csr", dtype=np.float32)
        x.data[:] = 1.0
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
        brute = (x.T @ x).toarray() / (np.outer(norms, norms) + 10.0)
        np.fill_diagonal(brute, 0.0)
        approx = ItemKNN(K=5, shrink=10.0, oversample=1.0).fit(x)
        coo = approx.similarity_.tocoo()
        np.testing.assert_allclose(coo.data, brute[coo.row, coo.col], rtol=1e-5)
        assert approx.n_recomputed_ == 0 and approx.n_inexact_ > 0
        # Fetching every item as a candidate makes the approximation exact.
        wide = ItemKNN(K=5, shrink=10.0, oversample=12.0).fit(x).similarity_.toarray()
        for row in range(60):
            np.testing.assert_allclose(np.sort(wide[row])[::-1][:5], np.sort(brute[row])[::-1][:5], rtol=1e-5)


class TestUserKNN(RecommenderContract):
    def make_model(self) -> Recommender:
        return UserKNN(K=5, shrink=1.0)

    def test_scores_match_a_dense_brute_force(self) -> None:
        rng = np.random.default_rng(3)
        x = sp.random(60, 25, density=0.15, random_state=rng, format="csr", dtype=np.float32)
        model = UserKNN(K=4, shrink=2.0).fit(x)
        d = x.toarray().astype(np.float64)
        norms = np.linalg.norm(d, axis=1)
        sims = (d @ d.T) / (np.outer(norms, norms) + 2.0)
        np.fill_diagonal(sims, 0.0)  # a training user is never their own neighbour
        want = np.zeros_like(d)
        for u in range(60):
            top = np.argsort(-sims[u], kind="stable")[:4]
            want[u] = sims[u, top] @ d[top]
        got = model.score_users(np.arange(60), x)
        # Ties at the K-th neighbour may be broken differently; compare users without such ties.
        for u in range(60):
            kth = np.sort(sims[u])[::-1][3:5]
            if kth[0] != kth[1]:
                np.testing.assert_allclose(got[u], want[u], rtol=1e-5, atol=1e-6)


class TestRP3beta(RecommenderContract):
    def make_model(self) -> Recommender:
        return RP3beta(alpha=1.0, beta=0.3, K=6)

    def test_matches_dense_formula(self) -> None:
        rng = np.random.default_rng(1)
        x = sp.random(40, 12, density=0.3, random_state=rng, format="csr", dtype=np.float32)
        alpha, beta = 0.8, 0.4
        d = x.toarray().astype(np.float64)
        p_ui = (d / d.sum(axis=1, keepdims=True).clip(min=1e-12)) ** alpha
        p_iu = (d.T / d.T.sum(axis=1, keepdims=True).clip(min=1e-12)) ** alpha
        pop = (d > 0).sum(axis=0)
        w = p_iu @ p_ui / np.where(pop > 0, pop, 1.0) ** beta
        np.fill_diagonal(w, 0.0)
        got = RP3beta(alpha=alpha, beta=beta, K=12, input_scaling="raw").fit(x).similarity_.toarray()
        np.testing.assert_allclose(got, w, rtol=1e-4, atol=1e-6)


class TestEASE(RecommenderContract):
    def make_model(self) -> Recommender:
        return EASE(l2=1.0)

    def test_matches_closed_form_inverse(self) -> None:
        rng = np.random.default_rng(2)
        x = sp.random(50, 15, density=0.3, random_state=rng, format="csr", dtype=np.float32)
        g = (x.T @ x).toarray().astype(np.float64) + 7.0 * np.eye(15)
        p = np.linalg.inv(g)
        b = -p / np.diag(p)
        np.fill_diagonal(b, 0.0)
        np.testing.assert_allclose(EASE(l2=7.0, input_scaling="raw").fit(x).B_, b, rtol=1e-4, atol=1e-6)

    def test_item_limit(self) -> None:
        with pytest.raises(ValueError, match=r"max_items=5 .*got 10 items"):
            EASE(max_items=5).fit(group_matrix())


class TestSLIM(RecommenderContract):
    def make_model(self) -> Recommender:
        from shop_recs.recsys.slim import SLIM  # why: kept next to the one test class that uses it

        return SLIM(alpha=1e-3, l1_ratio=0.1, n_jobs=1)


class TestRP3betaNormalised(RecommenderContract):
    def make_model(self) -> Recommender:
        return RP3beta(alpha=2.0, beta=0.3, K=6, normalize_similarity=True)


class TestEASEDebiased(RecommenderContract):
    def make_model(self) -> Recommender:
        return EASE(l2=1.0, debias=0.3)


class TestALS(RecommenderContract):
    def make_model(self) -> Recommender:
        return ALS(factors=4, iterations=10, regularization=0.01, random_state=3, num_threads=1)

    def test_fold_in_matches_training_user(self) -> None:
        model, x = self.fitted(), group_matrix()
        folded = model.fold_in(x[[0]])[0]
        # Same history -> close to the trained factors (not equal: the last ALS user step used the
        # previous iteration's item factors).
        np.testing.assert_allclose(folded, model.user_factors_[0], rtol=0.1)
        ids, _ = model.recommend(-1, x[0], N=1)
        assert ids[0] == held_out(0)


class TestBPR(RecommenderContract):
    def make_model(self) -> Recommender:
        return BPR(factors=8, iterations=200, learning_rate=0.05, random_state=3, num_threads=1)


class TestPureSVD(RecommenderContract):
    def make_model(self) -> Recommender:
        return PureSVD(factors=2, random_state=0)


class TestContent(RecommenderContract):
    def make_model(self) -> Recommender:
        return ContentBased(K=4)

    def test_recommends_zero_interaction_item(self) -> None:
        x = group_matrix().tolil()
        x[:, 4] = 0  # nobody has interacted with item 4
        x = x.tocsr()
        x.eliminate_zeros()
        model = ContentBased(K=4).fit(x, item_features=DOCS)
        user = 0  # held-out item 0, and item 4 now unseen too
        ids, _ = model.recommend(user, x, N=2)
        assert 4 in ids and set(ids) <= {0, 4}

    def test_precomputed_sparse_features(self) -> None:
        feats = sp.csr_matrix(np.vstack([np.tile([1.0, 0.0], (GROUP, 1)), np.tile([0.0, 1.0], (GROUP, 1))]))
        model = ContentBased(K=3).fit(group_matrix(), item_features=feats)
        assert model.recommend(0, group_matrix(), N=1)[0][0] == held_out(0)


class TestHybrid(RecommenderContract):
    def make_model(self) -> Recommender:
        return Hybrid(
            components={"item_knn": {"K": 4}, "content": {"K": 4}, "popularity": {}},
            weights={"item_knn": 1.0, "content": 0.3, "popularity": 0.05},
            thin_history=3,
        )

    def test_cold_user_gets_popularity_order(self) -> None:
        model = self.fitted()
        popular = MostPopular().fit(group_matrix())
        empty = sp.csr_matrix((1, N_ITEMS), dtype=np.float32)
        np.testing.assert_array_equal(
            model.recommend(-1, empty, N=N_ITEMS)[0], popular.recommend(-1, empty, N=N_ITEMS)[0]
        )

    def test_thin_user_leans_on_content(self) -> None:
        model = self.fitted()
        rows = sp.csr_matrix(np.eye(N_ITEMS, dtype=np.float32)[[0]])  # one interaction: thin
        parts = model.component_scores(np.array([-1]), rows)
        boosted = model._blend(parts, model.weights_, np.array([1]))
        plain = model._blend(parts, model.weights_, np.array([5]))
        content = parts[model.labels.index("content")]
        np.testing.assert_allclose(boosted - plain, (3.0 - 1.0) * 0.3 * content, atol=1e-6)

    def test_tune_weights_returns_grid_point(self) -> None:
        x = group_matrix()
        valid = sp.csr_matrix(
            ([1.0] * N_USERS, (np.arange(N_USERS), [held_out(u) for u in range(N_USERS)])), shape=x.shape
        )
        weights = self.fitted().tune_weights(x, valid, grid=(0.0, 1.0), k=1)
        assert weights["item_knn"] == 1.0 and set(weights) == {"item_knn", "content", "popularity"}

    def test_without_item_text_the_content_part_is_skipped(self) -> None:
        x = group_matrix()
        model = self.make_model().fit(x)  # no item_features
        assert model.skipped_components_ == ["content"] and model.labels == ["item_knn", "popularity"]
        assert "content" in model.get_params()["components"]  # the configuration is left as given
        assert model.recommend(0, x, N=1)[0][0] == held_out(0)

    def test_save_load_without_the_skipped_part(self, tmp_path) -> None:
        x = group_matrix()
        model = self.make_model().fit(x)
        model.save(tmp_path / "h.npz")
        loaded = Hybrid.load(tmp_path / "h.npz")
        assert loaded.labels == ["item_knn", "popularity"] and loaded.skipped_components_ == ["content"]
        np.testing.assert_array_equal(
            loaded.recommend(np.arange(4), x, N=3)[0], model.recommend(np.arange(4), x, N=3)[0]
        )

    def test_from_models(self) -> None:
        x = group_matrix()
        knn = ItemKNN(K=4).fit(x)
        hybrid = Hybrid.from_models({"item_knn": knn, "popularity": MostPopular().fit(x)}, {"item_knn": 1.0})
        assert hybrid.recommend(0, x, N=1)[0][0] == held_out(0)


def test_registry_covers_every_algorithm() -> None:
    expected = {"popularity", "trending", "item_knn", "user_knn", "rp3beta", "ease", "slim", "als", "bpr", "pure_svd"}
    assert expected | {"content", "hybrid"} == set(ALGORITHMS) == set(DEFAULT_GRIDS)
    for name in ALGORITHMS:
        combos = grid(name)
        assert 2 <= len(combos) <= 18
        for params in combos:
            make(name, **params)
    with pytest.raises(ValueError, match="unknown algorithm"):
        make("nope")
