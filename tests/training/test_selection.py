"""Training uses the bench's validation and selection: temporal holdout when timestamps allow one,
a blend only when the holdout says it helps (training.selection)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from shop_recs.recsys import data
from shop_recs.training import selection, services
from tests.training.conftest import T0

DAY = 86_400


def _log(n_users: int, days: int = 60, seed: int = 0) -> data.Interactions:
    rng = np.random.default_rng(seed)
    users, items, ts = [], [], []
    for u in range(n_users):
        for _ in range(10):
            users.append(f"c{u}")
            items.append(f"p{rng.integers(25)}")
            ts.append(int(rng.integers(days * DAY)))
    return data.from_arrays(users, items, timestamps=np.array(ts))


def test_holdout_is_temporal_when_timestamps_allow_it():
    split = selection.holdout_split(_log(200), {})
    assert split.protocol == "temporal" and split.info["validation"] == "temporal"
    # Every test row is no earlier than every train row: the holdout looks like tomorrow.
    assert split.info["cutoff"] > split.train_log.timestamps.max()


def test_holdout_falls_back_to_leave_last_with_a_reason():
    split = selection.holdout_split(_log(8), {})  # too few customers left after a global cut
    assert split.protocol == "leave_last" and split.info["validation"] == "leave_last"
    assert "test users" in split.info["validation_reason"]
    log = _log(200)
    flat = data.from_arrays(log.user_ids[log.users], log.item_ids[log.items])
    assert selection.holdout_split(flat, {}).info["validation_reason"] == "the log has no varying timestamps"


def test_requested_protocol_is_kept():
    split = selection.holdout_split(_log(200), {"protocol": "random", "test_fraction": 0.3})
    assert split.protocol == "random" and split.info["validation_reason"] == "requested by the run"


def _noisy(mean: float, n: int = 500) -> np.ndarray:
    return np.clip(np.random.default_rng(0).normal(mean, 0.3, n), 0, None)


def test_a_blend_that_only_ties_is_not_picked():
    ease = _noisy(0.30)
    # The blend differs from ease per user, by +0.0005 on average: well inside the noise.
    wobble = np.random.default_rng(1).normal(0.0, 0.05, len(ease))
    per_user = {"ease": ease, "als": _noisy(0.25), "hybrid": ease + wobble - wobble.mean() + 0.0005}
    checks = selection.compare_blends(per_user)
    assert checks["hybrid"]["versus"] == "ease" and checks["hybrid"]["helps"] is False
    results = {name: {"ndcg@10": float(v.mean())} for name, v in per_user.items()}
    results["hybrid"]["blend_check"] = checks["hybrid"]
    # Before: the raw maximum (the blend, by 0.001) was activated.
    assert selection.pick_best(results, ["hybrid", "ease", "als"], "ndcg@10") == "ease"


def test_a_blend_that_clearly_helps_is_picked():
    per_user = {"ease": _noisy(0.30), "hybrid": _noisy(0.30) + 0.05}
    results = {name: {"ndcg@10": float(v.mean())} for name, v in per_user.items()}
    results["hybrid"]["blend_check"] = selection.compare_blends(per_user)["hybrid"]
    assert results["hybrid"]["blend_check"]["helps"] is True
    assert selection.pick_best(results, ["ease", "hybrid"], "ndcg@10") == "hybrid"
    # A run of blends only (the demo default) still gets its blend.
    assert selection.pick_best({"hybrid": {"ndcg@10": 0.2}}, ["hybrid"], "ndcg@10") == "hybrid"


def test_training_run_records_its_validation(store, shop_data):
    run = services.train_store(store, algorithms=["popularity", "item_knn"])
    holdout = run.metrics["holdout"]
    # 12 customers: a global temporal cut leaves too few to score, so the per-user cut is used, and said.
    assert holdout["validation"] == "leave_last" and "test users" in holdout["validation_reason"]
    for name in ("popularity", "item_knn"):
        result = run.metrics["algorithms"][name]
        assert result["validation"] == "leave_last"
        assert result["interval"]["lo"] <= result["ndcg@10"] <= result["interval"]["hi"]


def test_training_on_a_long_history_validates_temporally(store, make_product, make_customer, add_events):
    products = [make_product(store, f"P{i}", title=f"item {i}") for i in range(8)]
    customers = [make_customer(store, f"C{i}") for i in range(80)]
    rng = np.random.default_rng(0)
    rows = [
        (c, products[int(rng.integers(8))], "purchase", T0 + timedelta(days=int(rng.integers(60))))
        for c in customers
        for _ in range(6)
    ]
    add_events(store, rows)
    run = services.train_store(store, algorithms=["popularity"])
    assert run.metrics["holdout"]["validation"] == "temporal", run.metrics["holdout"]["validation_reason"]
    assert run.metrics["holdout"]["protocol"] == "temporal"


def test_training_offers_the_benchs_blend_and_checks_it_against_the_best_single(store, shop_data):
    from shop_recs.recsys.blend import blend_params

    params = {"hybrid": blend_params([("item_knn", {"K": 4}), ("popularity", {})], [1.0, 0.2], "rank")}
    run = services.train_store(store, algorithms=["item_knn", "popularity", "hybrid"], params=params)
    check = run.metrics["algorithms"]["hybrid"]["blend_check"]
    assert check["versus"] in ("item_knn", "popularity")
    # 12 customers: no gain beyond the noise, so the single model is activated, not the blend.
    assert check["helps"] is False, check
    assert run.metrics["best"] == check["versus"]
