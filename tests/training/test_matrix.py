"""The matrix builder on hand-built events: weights, decay, dedupe, min-support, bots, id maps."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from shop_recs.training.matrix import MatrixConfig, build_interactions
from tests.training.conftest import T0

NO_DECAY = {"half_life_days": None, "max_cell_value": None}


def _cell(data, customer, product) -> float:
    row = int(np.flatnonzero(data.user_ids == customer.pk)[0])
    col = int(np.flatnonzero(data.item_ids == product.pk)[0])
    return float(data.matrix[row, col])


@pytest.fixture
def two(store, make_product, make_customer):
    return (
        [make_customer(store, "a"), make_customer(store, "b")],
        [make_product(store, "X", title="Red mug"), make_product(store, "Y", title="Blue shirt")],
    )


def test_event_type_weights_and_id_maps(store, two, add_events):
    (a, b), (x, y) = two
    add_events(store, [(a, x, "view", T0), (a, y, "purchase", T0), (b, x, "add_to_cart", T0), (b, y, "search", T0)])
    data = build_interactions(store, config=NO_DECAY)
    assert sorted(data.user_ids.tolist()) == sorted([a.pk, b.pk])
    assert sorted(data.item_ids.tolist()) == sorted([x.pk, y.pk])
    assert _cell(data, a, x) == 1.0
    assert _cell(data, a, y) == 5.0
    assert _cell(data, b, x) == 3.0
    assert data.matrix.nnz == 3  # "search" weighs 0
    assert data.filter_report["zero_weight_events"] == 1
    # custom weights
    custom = build_interactions(store, config={**NO_DECAY, "event_weights": {"view": 2.0}})
    assert _cell(custom, a, x) == 2.0
    # item side information is aligned with the columns
    col_x = int(np.flatnonzero(data.item_ids == x.pk)[0])
    assert "Red mug" in data.item_texts[col_x]


def test_time_decay_halves_at_half_life(store, two, add_events):
    (a, b), (x, y) = two
    add_events(store, [(a, x, "purchase", T0), (b, y, "purchase", T0 + timedelta(days=10))])
    data = build_interactions(store, config={"half_life_days": 10, "max_cell_value": None})
    assert _cell(data, b, y) == pytest.approx(5.0)
    assert _cell(data, a, x) == pytest.approx(2.5)


def test_exact_duplicates_are_dropped_and_repeats_summed_with_cap(store, two, add_events):
    (a, _b), (x, y) = two
    add_events(store, [(a, x, "view", T0), (a, x, "view", T0), (a, x, "view", T0 + timedelta(minutes=1))])
    add_events(store, [(a, y, "view", T0 + timedelta(minutes=i)) for i in range(30)])
    data = build_interactions(store, config={"half_life_days": None, "max_cell_value": 20})
    assert data.filter_report["duplicates_removed"] == 1
    assert _cell(data, a, x) == 2.0
    assert _cell(data, a, y) == 20.0  # capped


def test_min_support_is_iterative(store, make_product, make_customer, add_events):
    users = [make_customer(store, f"u{i}") for i in range(3)]
    items = [make_product(store, f"I{i}") for i in range(3)]
    # u0, u1 share I0 and I1; u2 only touches I2 (which only u2 touches)
    add_events(
        store,
        [
            (users[0], items[0], "view", T0),
            (users[0], items[1], "view", T0),
            (users[1], items[0], "view", T0),
            (users[1], items[1], "view", T0),
            (users[2], items[2], "view", T0),
        ],
    )
    data = build_interactions(store, config={"min_user_interactions": 2, "min_item_interactions": 2})
    assert sorted(data.user_ids.tolist()) == sorted([users[0].pk, users[1].pk])
    assert sorted(data.item_ids.tolist()) == sorted([items[0].pk, items[1].pk])
    assert data.filter_report["users_below_min_support"] == 1
    assert data.filter_report["items_below_min_support"] == 1


def test_bot_filter_reports_who_and_how_much(store, two, add_events):
    (human, bot), (x, y) = two
    add_events(store, [(human, x, "view", T0), (human, y, "purchase", T0)])
    # 40 events per minute for 3 minutes: no human browses like this
    add_events(
        store,
        [(bot, x if i % 2 else y, "view", T0 + timedelta(minutes=m, seconds=i)) for m in range(3) for i in range(40)],
    )
    data = build_interactions(store, config=MatrixConfig(bot_events_per_minute=30, bot_sustained_minutes=3))
    assert data.user_ids.tolist() == [human.pk]
    assert data.filter_report["bot_customers"] == [bot.pk]
    assert data.filter_report["n_bot_customers"] == 1
    assert data.filter_report["events_removed"] > 0  # after deduping same-second repeats


def test_outlier_quantile_filter_with_floor(store, make_product, make_customer, add_events):
    items = [make_product(store, f"I{i}") for i in range(2)]
    users = [make_customer(store, f"u{i}") for i in range(5)]
    rows = [(u, items[0], "view", T0) for u in users]
    rows += [(users[0], items[1], "view", T0 + timedelta(hours=h)) for h in range(50)]  # slow but huge
    add_events(store, rows)
    kept = build_interactions(store)  # default floor (5000 events) protects a small store's top user
    assert users[0].pk in kept.user_ids
    cut = build_interactions(store, config={"outlier_quantile": 0.5, "outlier_min_events": 10})
    assert users[0].pk not in cut.user_ids
    assert cut.filter_report["outlier_customers"] == [users[0].pk]


def test_other_store_events_are_invisible(store, other_store, two, make_product, make_customer, add_events):
    (a, _b), (x, _y) = two
    add_events(store, [(a, x, "view", T0)])
    oc, op = make_customer(other_store, "z"), make_product(other_store, "Z")
    add_events(other_store, [(oc, op, "purchase", T0)])
    data = build_interactions(store)
    assert data.user_ids.tolist() == [a.pk] and data.item_ids.tolist() == [x.pk]


def test_unknown_setting_is_refused():
    with pytest.raises(ValueError, match="unknown matrix settings"):
        MatrixConfig.from_dict({"half_life": 3})
