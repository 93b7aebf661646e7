"""Hyperparameter search: finds the known-best setting, is deterministic, honours budgets, never sees test."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest
import scipy.sparse as sp

from shop_recs.recsys import data, splits, tuning
from shop_recs.recsys.base import Recommender, as_csr


class ItemOrder(Recommender):
    """Ranks items by train popularity (``mode="popular"``), its reverse, or a seeded shuffle."""

    name: ClassVar[str] = "item_order"
    seen: ClassVar[list[sp.csr_matrix]] = []

    def __init__(self, mode: str = "random", seed: int = 0) -> None:
        self.mode = mode
        self.seed = seed

    def fit(self, user_items: sp.csr_matrix, **kwargs: Any) -> ItemOrder:
        ItemOrder.seen.append(as_csr(user_items))
        pop = np.asarray((user_items > 0).sum(axis=0)).ravel().astype(np.float32)
        self.n_items_ = user_items.shape[1]
        if self.mode == "popular":
            self.scores_ = pop
        elif self.mode == "unpopular":
            self.scores_ = -pop
        elif self.mode == "random":
            self.scores_ = np.random.default_rng(self.seed).random(self.n_items_).astype(np.float32)
        else:
            raise ValueError(self.mode)
        return self

    def score_users(self, user_ids: np.ndarray, user_items: sp.csr_matrix) -> np.ndarray:
        ItemOrder.seen.append(as_csr(user_items))
        return np.tile(self.scores_, (len(user_ids), 1))


def skewed_log(seed: int = 0) -> data.Interactions:
    """Users pick items with Zipf-like popularity, over time: popularity is clearly the best ranking."""
    rng = np.random.default_rng(seed)
    n_users, n_items = 80, 40
    p = 1.0 / np.arange(1, n_items + 1)
    p /= p.sum()
    users, items, ts = [], [], []
    for u in range(n_users):
        chosen = rng.choice(n_items, size=12, replace=False, p=p)
        for j, i in enumerate(chosen):
            users.append(f"u{u}")
            items.append(f"i{i}")
            ts.append(1000 * j + u)
    return data.from_arrays(users, items, timestamps=np.array(ts))


def test_finds_the_known_best_config():
    outer = splits.temporal_split(skewed_log(), test_days=3000 / 86_400)
    val = splits.validation_split(outer)
    grid = {"mode": ["unpopular", "random", "popular"]}
    res = tuning.tune(ItemOrder, val, grid, metric="ndcg@5")
    assert res.best_params == {"mode": "popular"}
    assert res.leaderboard[0]["score"] > res.leaderboard[-1]["score"]
    assert res.n_trials == 3  # defaults {} (mode="random") + the 2 grid points that differ from them
    assert [row["score"] for row in res.leaderboard] == sorted((row["score"] for row in res.leaderboard), reverse=True)


def test_never_receives_test_data():
    outer = splits.temporal_split(skewed_log(seed=1), test_days=3000 / 86_400)
    test_only = outer.test  # new items per user in the test window, never in outer train
    assert test_only.nnz > 0
    ItemOrder.seen.clear()
    val = splits.validation_split(outer)
    tuning.tune(ItemOrder, val, {"mode": ["popular", "random"]})
    assert ItemOrder.seen
    for mat in ItemOrder.seen:
        # every matrix a model saw is part of the outer TRAIN; none holds a test pair
        if mat.shape == test_only.shape:
            assert mat.multiply(test_only).nnz == 0
            assert (mat > 0).multiply(outer.train > 0).nnz == (mat > 0).nnz


def test_random_search_is_deterministic_and_budgeted():
    grid = {"a": [1, 2, 3, 4, 5], "b": [0.1, 0.2, 0.3]}
    c1 = tuning.candidate_configs(grid, n_iter=4, seed=3)
    c2 = tuning.candidate_configs(grid, n_iter=4, seed=3)
    c3 = tuning.candidate_configs(grid, n_iter=4, seed=4)
    assert c1 == c2 and c1 != c3
    assert c1[0] == {} and len(c1) == 5
    assert len(tuning.candidate_configs(grid, n_iter=None)) == 16  # small enough: full grid
    assert len(tuning.candidate_configs(grid, search="grid", n_iter=2)) == 16

    val = splits.validation_split(splits.temporal_split(skewed_log(), test_days=3000 / 86_400))
    res = tuning.tune(ItemOrder, val, {"mode": ["popular", "random"]}, time_budget=0.0)
    assert res.n_trials == 1 and res.stopped_by_budget
    again = tuning.tune(ItemOrder, val, {"mode": ["popular", "random", "unpopular"]}, search="random", n_iter=2)
    assert (
        again.best_params
        == tuning.tune(
            ItemOrder, val, {"mode": ["popular", "random", "unpopular"]}, search="random", n_iter=2
        ).best_params
    )


def test_broken_config_is_recorded_not_fatal():
    val = splits.validation_split(splits.temporal_split(skewed_log(), test_days=3000 / 86_400))
    res = tuning.tune(ItemOrder, val, {"mode": ["nonsense", "popular"]})
    assert res.best_params == {"mode": "popular"}
    broken = [row for row in res.leaderboard if "error" in row]
    assert broken and broken[0]["score"] == -np.inf


def test_registry_name_uses_default_grid():
    from shop_recs.recsys import registry

    val = splits.validation_split(splits.temporal_split(skewed_log(), test_days=3000 / 86_400))
    res = tuning.tune("popularity", val, n_iter=5)
    defaults = registry.make("popularity").get_params()
    differing = [cfg for cfg in registry.grid("popularity") if any(defaults.get(k) != v for k, v in cfg.items())]
    assert 0 < len(differing) < len(registry.grid("popularity"))  # the grid restates the defaults once
    assert res.n_trials == 1 + len(differing)
    assert np.isfinite(res.best_score)


@pytest.mark.parametrize("name", ["implicit_als", "implicit_bpr", "implicit_cosine"])
def test_peers_follow_the_contract(name):
    from shop_recs.recsys import peers

    val = splits.validation_split(splits.temporal_split(skewed_log(), test_days=3000 / 86_400))
    model = peers.make_peer(name).fit(val.train)
    users = val.test_users[:5]
    ids, scores = model.recommend(users, val.train[users], N=val.n_items + 3)
    assert ids.shape == (5, val.n_items + 3)
    for row, u in zip(ids, users, strict=True):
        valid = row[row >= 0]
        assert len(set(valid.tolist())) == len(valid)
        assert not set(valid.tolist()) & set(val.train[u].indices.tolist())  # train items filtered
        assert (row[len(valid) :] == -1).all()  # padding at the end
    one, _ = model.recommend(int(users[0]), val.train[users[0]], N=3)
    assert one.shape == (3,)


def test_a_grid_point_that_restates_the_defaults_is_not_tried_twice():
    # EASE's defaults are l2=500, debias=0; its grid holds that point too. At 16k items each fit
    # costs about 80 s, so fitting it as "{}" and again as the grid point wasted a whole trial.
    grid = {"debias": [0.0, 0.2], "l2": [250, 500]}
    defaults = {"l2": 500, "debias": 0.0, "other": 1}
    configs = tuning.candidate_configs(grid, n_iter=None, defaults=defaults)
    assert configs == [{}, {"debias": 0.0, "l2": 250}, {"debias": 0.2, "l2": 250}, {"debias": 0.2, "l2": 500}]
    # without the defaults given, or without the defaults trial, every grid point stays
    assert len(tuning.candidate_configs(grid, n_iter=None)) == 5
    assert len(tuning.candidate_configs(grid, n_iter=None, include_defaults=False, defaults=defaults)) == 4


def test_tune_fits_the_default_configuration_once():
    val = splits.validation_split(splits.temporal_split(skewed_log(), test_days=3000 / 86_400))
    default_mode = ItemOrder().get_params()["mode"]
    res = tuning.tune(ItemOrder, val, {"mode": [default_mode, "popular"]})
    tried = sorted(str(row["params"]) for row in res.leaderboard)
    assert res.n_trials == 2 and tried == ["{'mode': 'popular'}", "{}"]
