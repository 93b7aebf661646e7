"""Evaluation loop: full ranking with train items filtered, batching, slices, beyond-accuracy numbers."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import pytest
import scipy.sparse as sp

from shop_recs.recsys import evaluate as ev
from shop_recs.recsys import registry, splits
from shop_recs.recsys.base import Recommender, as_csr


class FixedScores(Recommender):
    """Every user gets the same item scores (given), so the right answer is known by hand."""

    name: ClassVar[str] = "fixed"

    def __init__(self, scores: tuple[float, ...] = ()) -> None:
        self.scores = scores

    def fit(self, user_items: sp.csr_matrix, **kwargs: Any) -> FixedScores:
        self.n_items_ = user_items.shape[1]
        return self

    def score_users(self, user_ids: np.ndarray, user_items: sp.csr_matrix) -> np.ndarray:
        return np.tile(np.asarray(self.scores, dtype=np.float32), (len(user_ids), 1))


def test_fixed_model_known_answer_and_train_filtering():
    # 3 users, 5 items; model order: 4 > 3 > 2 > 1 > 0
    train = as_csr(np.array([[0, 0, 0, 0, 1], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]]))
    test = as_csr(np.array([[0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 0]]))
    model = FixedScores((0.0, 1.0, 2.0, 3.0, 4.0)).fit(train)
    res = ev.evaluate(model, train, test, ks=[1, 2])
    np.testing.assert_array_equal(res.users, [0, 1])  # user 2 has no test items
    # user 0: item 4 is in train and filtered -> list [3, 2, ...]; hit at rank 2
    np.testing.assert_array_equal(res.recs, [[3, 2], [4, 3]])
    assert res.per_user["ndcg@2"][0] == pytest.approx(1 / math.log2(3))
    assert res.per_user["ndcg@2"][1] == pytest.approx(1 / math.log2(3))
    assert res["hit_rate@1"] == 0.0
    assert res["mrr@2"] == pytest.approx(0.5)
    assert res["precision@2"] == pytest.approx(0.5)
    assert res["coverage@2"] == pytest.approx(3 / 5)
    assert res["coverage@1"] == pytest.approx(2 / 5)
    assert res.metrics["popularity@2"] == pytest.approx(np.mean([(0 + 0) / 2, (1 + 0) / 2]))
    assert set(res.slices) == {"cold", "warm"}


def test_batching_does_not_change_results_and_slices():
    rng = np.random.default_rng(0)
    train = as_csr((rng.random((50, 30)) < 0.2).astype(np.float32))
    test = as_csr(((rng.random((50, 30)) < 0.1) & (train.toarray() == 0)).astype(np.float32))
    model = FixedScores(tuple(rng.random(30).tolist())).fit(train)
    a = ev.evaluate(model, train, test, ks=[5, 10], batch_size=7, cold_threshold=5)
    b = ev.evaluate(model, train, test, ks=[5, 10], batch_size=1000, cold_threshold=5)
    np.testing.assert_array_equal(a.recs, b.recs)
    assert a.metrics == pytest.approx(b.metrics, nan_ok=True)
    counts = np.diff(train.indptr)[a.users]
    assert a.slices["cold"]["n_users"] == int((counts <= 5).sum())
    assert a.slices["cold"]["n_users"] + a.slices["warm"]["n_users"] == len(a.users)
    custom = ev.evaluate(model, train, test, ks=[5], slices={"first10": np.arange(10)})
    sel = custom.users < 10
    assert custom.slices["first10"]["ndcg@5"] == pytest.approx(np.nanmean(custom.per_user["ndcg@5"][sel]))
    assert not np.intersect1d(a.recs[0], train[a.users[0]].indices).size  # train items never recommended
    lo, hi = a.ci("ndcg@10", n_resamples=4000)
    # Reference: scipy's percentile bootstrap of the mean over the same per-user values.
    from scipy import stats as sps

    x = a.per_user["ndcg@10"][~np.isnan(a.per_user["ndcg@10"])]
    ref = sps.bootstrap((x,), np.mean, n_resamples=4000, method="percentile", random_state=1).confidence_interval
    half = (ref.high - ref.low) / 2
    assert lo == pytest.approx(ref.low, abs=0.1 * half) and hi == pytest.approx(ref.high, abs=0.1 * half)
    assert a.ci("ndcg@10", n_resamples=4000) == (lo, hi)  # fixed seed: the same numbers twice


def test_result_to_dict_is_json_ready():
    import json

    train = as_csr(np.eye(4))
    test = as_csr(np.roll(np.eye(4), 1, axis=1))
    res = ev.fit_and_evaluate(FixedScores((1.0, 2.0, 3.0, 4.0)), train, test, ks=[2])
    assert res.fit_seconds is not None
    json.dumps(res.to_dict())


def checkerboard(n: int = 40, seed: int = 0):
    """Two disjoint taste groups: users 0..n/2 buy even items, the rest odd items (implicit's test shape)."""
    rng = np.random.default_rng(seed)
    m = np.zeros((n, n), dtype=np.float32)
    for u in range(n):
        m[u, np.arange(u % 2, n, 2)] = rng.random(n // 2) < 0.5
    return as_csr(m)


# Factor models need few factors on a 40x40 matrix (64 factors would just memorise it).
TINY_PARAMS = {
    "als": {"factors": 4},
    "bpr": {"factors": 4, "learning_rate": 0.05, "iterations": 300},
    "pure_svd": {"factors": 2},
}


# content needs item features and hybrid's default blend includes content: both are run by the bench
# only when the data has item text.
@pytest.mark.parametrize("name", sorted(n for n in registry.ALGORITHMS if n not in ("content", "hybrid")))
def test_registry_models_learn_the_checkerboard(name):
    """Smoke-test the contract of every registry model through the evaluation loop."""
    from shop_recs.recsys import data

    mat = checkerboard()
    r, c = mat.nonzero()
    log = data.from_arrays(r, c)
    split = splits.random_holdout(log, test_fraction=0.3, seed=0)
    model = registry.make(name, **TINY_PARAMS.get(name, {}))
    res = ev.fit_and_evaluate(model, split.train, split.test, ks=[10])
    # NDCG recomputed by hand from the served lists (binary gains, ideal = min(|test|, k) hits on top).
    test = split.test.tocsr()
    by_hand = []
    for row, u in zip(res.recs, res.users, strict=True):
        truth = set(test[u].indices.tolist())
        dcg = sum(1 / math.log2(r + 2) for r, i in enumerate(row) if i in truth)
        by_hand.append(dcg / sum(1 / math.log2(r + 2) for r in range(min(len(truth), 10))))
    assert res["ndcg@10"] == pytest.approx(np.mean(by_hand))
    assert res.recs.shape == (len(res.users), 10)
    if name not in ("popularity", "trending"):
        # personalised models must keep users inside their own group
        # (compare ORIGINAL ids: the split re-indexes into the train space)
        users = split.user_ids[res.users]
        items = np.where(res.recs >= 0, split.item_ids[np.maximum(res.recs, 0)], -1)
        same_parity = ((items % 2) == (users[:, None] % 2))[:, :3]
        assert same_parity[res.recs[:, :3] >= 0].mean() > 0.8, name
