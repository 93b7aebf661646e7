"""Validation that mirrors deployment, the one-standard-error rule, and blends tuned on validation."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from shop_recs.recsys import blend, data, selection, splits, tuning
from shop_recs.recsys.base import Recommender

DAY = 86_400


def _log(rows: list[tuple[str, str, int]]) -> data.Interactions:
    users, items, ts = zip(*rows, strict=True)
    return data.from_arrays(list(users), list(items), timestamps=np.array(ts) * DAY)


def _history(n_users: int = 30, n_items: int = 12, days: int = 40, seed: int = 0) -> list[tuple[str, str, int]]:
    rng = np.random.default_rng(seed)
    return [(f"u{u}", f"i{rng.integers(n_items)}", int(rng.integers(days))) for u in range(n_users) for _ in range(8)]


# --- temporal validation when timestamps say the test lies after train --------------------------


def test_given_split_with_test_after_train_validates_temporally():
    train = _log(_history(days=40))
    test = _log([(f"u{u}", f"i{(u + 3) % 12}", 45) for u in range(30)])
    outer = splits.given_split(train, test)
    assert outer.info["test_after_train"] is True
    val = splits.validation_split(outer)
    # Before: a given split always got a random per-user holdout, whatever the timestamps said.
    assert val.protocol == "temporal"
    assert val.info["validation"] == "temporal"
    assert "after train" in val.info["validation_reason"]
    # A one-day test window has no length: validation falls back to the last 1/10 of train's span.
    assert val.info["cutoff"] == int(39 * DAY - 3.9 * DAY)
    assert val.test.nnz > 0


def test_given_split_with_interleaved_times_stays_random():
    train = _log(_history(days=40))
    test = _log([(f"u{u}", f"i{(u + 3) % 12}", 10 + u) for u in range(30)])  # inside train's period
    outer = splits.given_split(train, test)
    assert outer.info["test_after_train"] is False
    val = splits.validation_split(outer)
    assert val.protocol == "random" and val.info["validation"] == "random"


def test_given_split_without_timestamps_stays_random():
    rows = _history()
    train = data.from_arrays([u for u, _, _ in rows], [i for _, i, _ in rows])
    test = data.from_arrays([f"u{u}" for u in range(30)], [f"i{(u + 3) % 12}" for u in range(30)])
    val = splits.validation_split(splits.given_split(train, test))
    assert val.protocol == "random"


def test_deployment_holdout_is_temporal_when_times_vary():
    assert splits.deployment_holdout(_log(_history(days=40)))[0] == "temporal"
    protocol, params = splits.deployment_holdout(_log(_history(days=40)))
    assert 0 < params["test_days"] <= 40
    rows = _history()
    flat = data.from_arrays([u for u, _, _ in rows], [i for _, i, _ in rows])
    assert splits.deployment_holdout(flat) == ("leave_last", {"k": 1})


# --- the one-standard-error rule -----------------------------------------------------------------


def _noisy(mean: float, n: int = 400, seed: int = 0) -> np.ndarray:
    return np.clip(np.random.default_rng(seed).normal(mean, 0.3, n), 0, None)


def test_one_se_rule_prefers_the_most_regularised_within_noise():
    base = _noisy(0.4)
    trials = [
        {"params": {"l2": 50}, "per_user": base + 0.004},  # the raw best, by less than one SE
        {"params": {"l2": 250}, "per_user": base + 0.002},
        {"params": {"l2": 1000}, "per_user": base},  # within one SE of the best: chosen
        {"params": {"l2": 5000}, "per_user": base - 0.2},  # clearly worse: never chosen
    ]
    se = selection.bootstrap_se(trials[0]["per_user"])
    assert 0.004 < se < 0.2
    chosen, record = selection.one_standard_error("ease", trials, defaults={"l2": 500})
    assert trials[chosen]["params"] == {"l2": 1000}
    assert record["best_index"] == 0 and record["n_eligible"] == 3
    assert record["why"].startswith("most regularised")


def test_one_se_rule_prefers_the_defaults_when_they_qualify():
    base = _noisy(0.4)
    trials = [
        {"params": {}, "per_user": base},
        {"params": {"l2": 50}, "per_user": base + 0.003},
        {"params": {"l2": 5000}, "per_user": base + 0.001},
    ]
    chosen, record = selection.one_standard_error("ease", trials, defaults={"l2": 500})
    assert chosen == 0 and record["why"] == "defaults within one SE of the best"


def test_one_se_rule_keeps_a_clear_winner():
    trials = [{"params": {}, "per_user": _noisy(0.2)}, {"params": {"l2": 50}, "per_user": _noisy(0.2) + 0.1}]
    chosen, record = selection.one_standard_error("ease", trials)
    assert chosen == 1 and record["why"] == "best"


class Fixed(Recommender):
    """Scores every user with a fixed per-item vector ``strength * signal + noise`` (seeded)."""

    name: ClassVar[str] = "fixed"

    def __init__(self, strength: float = 1.0, reg: float = 0.0) -> None:
        self.strength = strength
        self.reg = reg

    def fit(self, user_items: sp.csr_matrix, **kwargs: Any) -> Fixed:
        self.n_items_ = user_items.shape[1]
        pop = np.asarray((user_items > 0).sum(axis=0)).ravel().astype(np.float32)
        noise = np.random.default_rng(int(self.reg)).random(self.n_items_).astype(np.float32)
        self.scores_ = self.strength * pop + noise
        return self

    def score_users(self, user_ids: np.ndarray, user_items: sp.csr_matrix) -> np.ndarray:
        return np.tile(self.scores_, (len(user_ids), 1))


def test_tune_records_validation_selection_and_interval():
    train = _log(_history(n_users=60, days=40))
    test = _log([(f"u{u}", f"i{(u + 3) % 12}", 45) for u in range(60)])
    val = splits.validation_split(splits.given_split(train, test))
    res = tuning.tune(Fixed, val, {"strength": [1.0, 2.0]}, metric="ndcg@5")
    assert res.validation["protocol"] == "temporal"
    assert res.selection["rule"] == "one_standard_error"
    lo, hi = res.best_interval["lo"], res.best_interval["hi"]
    assert lo <= res.best_score <= hi
    assert res.best_per_user is not None and len(res.best_per_user) == len(val.test_users)
    assert set(res.to_dict()) >= {"validation", "selection", "best_interval"}


# --- blends --------------------------------------------------------------------------------------


class Table(Recommender):
    """A fixed (n_users, n_items) score table: the blend's components in the synthetic mixture."""

    name: ClassVar[str] = "table"

    def __init__(self, table: np.ndarray | None = None) -> None:
        self.table = table

    def fit(self, user_items: sp.csr_matrix, **kwargs: Any) -> Table:
        self.n_items_ = user_items.shape[1]
        return self

    def score_users(self, user_ids: np.ndarray, user_items: sp.csr_matrix) -> np.ndarray:
        return np.asarray(self.table, dtype=np.float32)[user_ids]


def _mixture(weight_b: float, n_users: int = 300, n_items: int = 60, seed: int = 0):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(n_users, n_items)), 5.0 * rng.normal(size=(n_users, n_items)) + 3.0

    def z(m: np.ndarray) -> np.ndarray:
        return (m - m.mean(axis=1, keepdims=True)) / m.std(axis=1, keepdims=True)

    truth_scores = z(a) + weight_b * z(b)
    top = np.argsort(-truth_scores, axis=1)[:, :5]
    test = sp.csr_matrix((np.ones(top.size), (np.repeat(np.arange(n_users), 5), top.ravel())), shape=a.shape)
    empty = sp.csr_matrix(a.shape, dtype=np.float32)
    val = splits.Split(
        train=empty, test=test, user_ids=np.arange(n_users), item_ids=np.arange(n_items), train_log=None, protocol="x"
    )
    models = {"a": Table(a).fit(empty), "b": Table(b).fit(empty)}
    return models, val


def test_blend_weights_are_recovered_on_a_synthetic_mixture():
    models, val = _mixture(weight_b=0.5)
    res = blend.tune_blend(models, val, k=5, normalizations=("zscore",))
    assert res["weights"] == [1.0, 0.5]
    assert res["score"] > 0.999  # the true mixture ranks every user's positives first
    assert res["single_score"] < 0.9
    helps, stats = selection.blend_helps(res["per_user"], res["single_per_user"])
    assert helps and stats["gain"] > stats["se"]


def test_blend_is_not_chosen_when_it_does_not_help():
    models, val = _mixture(weight_b=0.0)  # the truth is model a alone
    res = blend.tune_blend(models, val, k=5)
    helps, stats = selection.blend_helps(res["per_user"], res["single_per_user"])
    assert not helps and stats["gain"] <= 0


def test_choose_blend_ranks_members_and_stops_at_its_budget():
    models, val = _mixture(weight_b=0.5)
    models["c"] = Table(np.zeros((300, 60))).fit(val.train)  # an uninformative third model
    full = blend.choose_blend(models, ["a", "b", "c"], val, k=5)
    assert [c["labels"] for c in full["candidates"]] == [["a", "b"], ["a", "c"], ["a", "b", "c"]]
    assert full["labels"] == ["a", "b"] and full["weights"] == [1.0, 0.5] and full["helps"]
    assert full["stopped_by_budget"] is False
    # A zero budget: the first candidate always runs, nothing after it.
    cut = blend.choose_blend(models, ["a", "b", "c"], val, k=5, time_budget=0.0)
    assert [c["labels"] for c in cut["candidates"]] == [["a", "b"]] and cut["stopped_by_budget"] is True
    assert blend.choose_blend({"a": models["a"]}, ["a"], val) is None


def test_blend_params_build_a_plain_text_free_hybrid():
    from shop_recs.recsys import registry

    params = blend.blend_params([("ease", {"l2": 100.0}), ("rp3beta", {})], [1.0, 0.35], "rank")
    model = registry.make("hybrid", **params)
    x = sp.csr_matrix(np.eye(6, dtype=np.float32) + np.eye(6, k=1, dtype=np.float32))
    model.fit(x)
    assert model.labels == ["ease", "rp3beta"] and model.weights_.tolist() == [1.0, 0.35]
    ids, _ = model.recommend(np.arange(6), x, N=2)
    assert ids.shape == (6, 2)


class Regularised(Recommender):
    """Popularity whose ranking degrades as ``l2`` grows (reversed from l2=500 on), named like EASE
    so the tuner knows ``l2`` is its regulariser."""

    name: ClassVar[str] = "ease"

    def __init__(self, l2: float = 100.0) -> None:
        self.l2 = l2

    def fit(self, user_items: sp.csr_matrix, **kwargs: Any) -> Regularised:
        self.n_items_ = user_items.shape[1]
        pop = np.asarray((user_items > 0).sum(axis=0)).ravel().astype(np.float32)
        self.scores_ = (1.0 - self.l2 / 500.0) * pop
        return self

    def score_users(self, user_ids: np.ndarray, user_items: sp.csr_matrix) -> np.ndarray:
        return np.tile(self.scores_, (len(user_ids), 1))


def test_tuning_stops_a_path_early_once_it_clearly_loses():
    from tests.recsys.test_tuning import skewed_log

    val = splits.validation_split(splits.temporal_split(skewed_log(), test_days=3000 / 86_400))
    grid = {"l2": [50, 400, 800, 1600, 3200]}
    res = tuning.tune(Regularised, val, grid, metric="ndcg@5", search="grid")
    # l2=800 ranks backwards: a clear loser, worse than l2=400 -> 1600 and 3200 are never fitted.
    assert res.skipped == [{"l2": 1600}, {"l2": 3200}]
    assert res.n_trials == 4  # defaults, 50, 400, 800
    assert res.best_params == {}  # defaults, 50 and 400 rank alike: the defaults win the tie
