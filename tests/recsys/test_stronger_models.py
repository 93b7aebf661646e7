"""Known answers for RP3beta's normalisation, SLIM against a dense solution, and EASE's debiasing/Gram reuse."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from shop_recs.recsys import registry
from shop_recs.recsys.ease import EASE
from shop_recs.recsys.rp3beta import RP3beta
from shop_recs.recsys.slim import SLIM

# users: u0 bought {0, 1}, u1 {1, 2}, u2 {0, 1, 2}
X = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 1], [1, 1, 1]], dtype=np.float32))


def test_rp3beta_matches_the_hand_worked_walk():
    # P_ui rows: u0 [1/2 1/2 0], u1 [0 1/2 1/2], u2 [1/3 1/3 1/3];  P_iu rows: i0 [1/2 0 1/2],
    # i1 [1/3 1/3 1/3], i2 [0 1/2 1/2].  W = P_iu P_ui without the diagonal (alpha=1, beta=0):
    expected = np.array([[0, 5 / 12, 1 / 6], [5 / 18, 0, 5 / 18], [1 / 6, 5 / 12, 0]])
    raw = RP3beta(alpha=1.0, beta=0.0, K=10).fit(X).similarity_.toarray()
    np.testing.assert_allclose(raw, expected, rtol=1e-5)
    # Row-normalised: each row divided by its sum (7/12, 5/9, 7/12).
    normed = RP3beta(alpha=1.0, beta=0.0, K=10, normalize_similarity=True).fit(X).similarity_.toarray()
    np.testing.assert_allclose(normed, [[0, 5 / 7, 2 / 7], [0.5, 0, 0.5], [2 / 7, 5 / 7, 0]], rtol=1e-5)


def test_rp3beta_alpha_above_one_and_beta_follow_the_definition():
    a, b = 2.5, 0.35
    p_ui = X.toarray() / X.toarray().sum(axis=1, keepdims=True)
    p_iu = X.toarray().T / X.toarray().sum(axis=0)[:, None]
    pop = X.toarray().sum(axis=0)
    w = (p_iu**a) @ (p_ui**a) / pop[None, :] ** b
    np.fill_diagonal(w, 0)
    got = RP3beta(alpha=a, beta=b, K=10).fit(X).similarity_.toarray()
    np.testing.assert_allclose(got, w, rtol=1e-5)


def _ridge_reference(x: np.ndarray, alpha: float) -> np.ndarray:
    """Dense per-item ridge: (X_-j' X_-j / n + alpha I) w = X_-j' x_j / n, w_j = 0."""
    n, m = x.shape
    out = np.zeros((m, m))
    for j in range(m):
        others = [i for i in range(m) if i != j]
        a = x[:, others]
        out[others, j] = np.linalg.solve(a.T @ a / n + alpha * np.eye(m - 1), a.T @ x[:, j] / n)
    return out


def test_slim_matches_a_dense_reference_solution():
    rng = np.random.default_rng(0)
    x = (rng.random((40, 6)) < 0.4).astype(np.float32)
    # l1_ratio=0 is plain ridge, which has this closed form.
    model = SLIM(alpha=0.05, l1_ratio=0.0, positive=False, K=10, max_iter=10_000, tol=1e-12, n_jobs=2)
    model.fit(sp.csr_matrix(x))
    np.testing.assert_allclose(model.similarity_.toarray(), _ridge_reference(x.astype(np.float64), 0.05), atol=1e-4)
    assert model.n_fitted_ == 6
    assert np.all(np.diag(model.similarity_.toarray()) == 0)


def test_slim_positive_sparse_weights_and_budget():
    rng = np.random.default_rng(1)
    x = sp.csr_matrix((rng.random((60, 20)) < 0.3).astype(np.float32))
    model = SLIM(alpha=1e-3, l1_ratio=0.5, K=3).fit(x)
    w = model.similarity_.toarray()
    assert (w >= 0).all() and (np.count_nonzero(w, axis=0) <= 3).all()
    assert model.n_fitted_ == 20
    assert SLIM(time_budget=0.0).fit(x).n_fitted_ < 20  # budget spent: no item starts after it
    assert "slim" in registry.ALGORITHMS


def test_ease_gram_cache_gives_the_same_model_across_l2():
    x = sp.csr_matrix((np.random.default_rng(2).random((50, 15)) < 0.3).astype(np.float32))
    cache: dict = {}
    for l2 in (5.0, 50.0):
        cached = EASE(l2=l2).fit(x, cache=cache)
        plain = EASE(l2=l2).fit(x)
        np.testing.assert_allclose(cached.B_, plain.B_, rtol=1e-5, atol=1e-7)
    assert "ease_gram" in cache


def test_ease_debias_is_ease_on_degree_scaled_columns():
    x = sp.csr_matrix((np.random.default_rng(3).random((50, 15)) < 0.3).astype(np.float32))
    pop = np.asarray(x.sum(axis=0)).ravel()
    d = np.where(pop > 0, pop, 1.0) ** -0.5
    xd = x.toarray() @ np.diag(d)
    p = np.linalg.inv(xd.T @ xd + 10.0 * np.eye(15))
    b = np.eye(15) - p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0)
    model = EASE(l2=10.0, debias=0.5).fit(x)
    np.testing.assert_allclose(model.score_users(np.arange(50), x), xd @ b, rtol=1e-4, atol=1e-5)
    assert not np.allclose(model.B_, EASE(l2=10.0).fit(x).B_)
