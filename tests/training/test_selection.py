"""Training uses the bench's validation and selection: temporal holdout when timestamps allow one,
a blend only when the holdout says it helps (training.selection)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from shop_recs.recsys import data
from shop_recs.stores.scoping import store_scope
from shop_recs.training import selection, services
from shop_recs.training.artifacts import load_version
from shop_recs.training.models import ModelVersion
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


CATEGORIES = ("mug", "shirt", "lamp", "sock", "book", "pen", "bag", "cup")


def _category_shop(store, make_product, make_customer, add_events, *, star: bool):
    """8 categories x 10 products; 160 customers, each buys 2 non-hot items of one category early.

    ``star=False``: each category has a hot item (product 0). Half the customers buy their
    category's hot item early, the other half in the last days: the future is "the popular item of
    my category". Popularity alone ranks the 8 hot items in any order, content alone all items of the
    category alike; only a blend of the two puts the right one first.
    ``star=True``: one star product outside the categories is that future item for everyone, so
    popularity alone is already perfect and any blend can at best tie.
    """
    rng = np.random.default_rng(0)
    products = {c: [make_product(store, f"{c}-{i}", title=f"{c} item{c}{i}") for i in range(10)] for c in CATEGORIES}
    star_item = make_product(store, "star", title="gadget special") if star else None
    rows = []
    for i in range(160):
        customer = make_customer(store, f"C{i}")
        cat = CATEGORIES[i % len(CATEGORIES)]
        hot = star_item if star else products[cat][0]
        for j in rng.choice(np.arange(1, 10), size=2, replace=False):
            rows.append((customer, products[cat][int(j)], "purchase", T0 + timedelta(days=int(rng.integers(40)))))
        late = (i // len(CATEGORIES)) % 2 == 1
        when = T0 + timedelta(days=55 + int(rng.integers(5)) if late else int(rng.integers(40)))
        rows.append((customer, hot, "purchase", when))
    add_events(store, rows)


def test_a_training_run_tunes_a_blend_that_clearly_helps_and_activates_it(
    store, make_product, make_customer, add_events
):
    _category_shop(store, make_product, make_customer, add_events, star=False)
    run = services.train_store(store, algorithms=["popularity", "content", "hybrid"])
    hybrid = run.metrics["algorithms"]["hybrid"]
    blend = hybrid["blend"]
    assert run.metrics["holdout"]["validation"] == "temporal" and blend["validation"] == "temporal"
    # Known answer: the blend of the two singles, both weighted, puts the right hot item first.
    # Content (0.67) outranks popularity (0.46) alone, so it is the reference with weight 1; z-scores are
    # tried first and the grid's smallest partner weight already breaks content's tie within the category.
    assert blend["members"] == ["content", "popularity"] and blend["normalization"] == "zscore"
    assert blend["weights"] == {"content": 1.0, "popularity": 0.1}
    assert blend["score"] == 1.0 and hybrid["ndcg@10"] == 1.0
    assert max(run.metrics["algorithms"][a]["ndcg@10"] for a in ("popularity", "content")) < 0.8
    assert blend["helps"] is True and blend["gain"] > blend["se"] and "beats" in blend["why"]
    assert hybrid["blend_check"]["helps"] is True and blend["interval"]["lo"] <= 1.0 <= blend["interval"]["hi"]
    assert blend["candidates"] and blend["budget_seconds"] == selection.BLEND_BUDGET_SECONDS
    assert run.metrics["best"] == "hybrid"
    with store_scope(store):
        active = ModelVersion.objects.get(is_active=True)
    assert active.algorithm == "hybrid"
    # What serving loads is exactly the blend that was tuned: its members and weights, no switching.
    served = load_version(active).model
    assert served.labels == ["content", "popularity"] and served.weights_.tolist() == [1.0, 0.1]
    assert served.normalization == "zscore" and served.cold_model == "" and served.content_model == ""


def test_a_training_run_keeps_the_single_model_when_the_blend_only_ties(store, make_product, make_customer, add_events):
    _category_shop(store, make_product, make_customer, add_events, star=True)
    run = services.train_store(store, algorithms=["popularity", "content", "hybrid"])
    algorithms = run.metrics["algorithms"]
    blend = algorithms["hybrid"]["blend"]
    # Popularity alone is perfect: the best blend can only tie, so it is recorded but not kept.
    assert algorithms["popularity"]["ndcg@10"] == 1.0 and blend["versus"] == "popularity"
    assert blend["gain"] <= 0 and blend["helps"] is False and "does not beat" in blend["why"]
    assert run.metrics["best"] == "popularity"
    with store_scope(store):
        written = set(ModelVersion.objects.filter(run=run).values_list("algorithm", flat=True))
    assert written == {"popularity", "content"}  # no version for a blend that was not kept
