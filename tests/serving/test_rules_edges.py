"""Serving rules: the saved ``StoreRules`` row, pins at the limit, boosts and the diversity similarity.

Mutation-testing gaps of ``shop_recs/serving/rules.py`` (docs/benchmarks.md): ``test_rules_vectorised.py``
compares the vectorised rules with a reference on in-memory ``Rules`` values, so loading the saved
row, the fast-path guard and the default category similarity were never pinned.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shop_recs.catalog.models import Category
from shop_recs.serving.models import StoreRules
from shop_recs.serving.rules import (
    Candidate,
    RuleContext,
    Rules,
    apply_rules,
    load_rules,
    purchased_products,
    ranks_by_score_alone,
    rules_from_row,
)
from shop_recs.serving.snapshot import catalog_snapshot
from shop_recs.stores.scoping import store_scope, unscoped

pytestmark = pytest.mark.django_db

TS = datetime(2025, 3, 1, 12, tzinfo=UTC)


@pytest.fixture
def cats(store):
    with unscoped():
        return {name: Category.objects.create(store=store, name=name, path=name) for name in ("Mugs", "Shirts", "Hats")}


@pytest.fixture
def items(store, cats, make_product):
    """Two mugs, a shirt, a hat and an uncategorised product."""
    return {
        "M1": make_product(store, "M1", category=cats["Mugs"]),
        "M2": make_product(store, "M2", category=cats["Mugs"]),
        "S1": make_product(store, "S1", category=cats["Shirts"]),
        "H1": make_product(store, "H1", category=cats["Hats"]),
        "U1": make_product(store, "U1", category=None),
        "U2": make_product(store, "U2", category=None),
    }


def _cands(items, scored: dict[str, float]) -> list[Candidate]:
    return [Candidate(items[sku].pk, score, "collaborative", "") for sku, score in scored.items()]


def _skus(items, out: list[Candidate]) -> list[str]:
    by_pk = {p.pk: sku for sku, p in items.items()}
    return [by_pk[c.product_id] for c in out]


def _save_rules(store, **fields) -> None:
    with unscoped():
        StoreRules.objects.update_or_create(store=store, defaults=fields)


def test_load_rules_returns_the_saved_row(store, items, cats):
    _save_rules(
        store,
        exclude_inactive=False,
        exclude_out_of_stock=False,
        exclude_purchased=False,
        repurchasable_category_ids=[cats["Mugs"].pk],
        blocked_product_ids=[items["H1"].pk],
        pinned_product_ids=[items["S1"].pk, items["M1"].pk, items["S1"].pk],
        boosted_product_ids=[items["M2"].pk],
        boosted_category_ids=[cats["Hats"].pk],
        boost_weight=2.5,
        default_diversity=0.4,
    )
    assert load_rules(store) == Rules(
        exclude_inactive=False,
        exclude_out_of_stock=False,
        exclude_purchased=False,
        repurchasable_categories=frozenset({cats["Mugs"].pk}),
        blocked=frozenset({items["H1"].pk}),
        pinned=(items["S1"].pk, items["M1"].pk),
        boosted_products=frozenset({items["M2"].pk}),
        boosted_categories=frozenset({cats["Hats"].pk}),
        boost_weight=2.5,
        diversity=0.4,
    )
    assert load_rules(store.pk) is load_rules(store)  # cached per store


@pytest.mark.parametrize(("saved", "served"), [(2.0, 1.0), (-1.0, 0.0), (0.25, 0.25)])
def test_default_diversity_is_clamped_to_0_1(store, saved, served):
    _save_rules(store, default_diversity=saved)
    assert load_rules(store).diversity == served


def test_rules_from_row_keeps_only_integer_ids():
    class Row:
        exclude_inactive = exclude_out_of_stock = exclude_purchased = True
        repurchasable_category_ids = ["3", 4, "x", "-5"]
        blocked_product_ids = None
        pinned_product_ids = []
        boosted_product_ids = [7, "8", "8.5"]
        boosted_category_ids = ["", 9]
        boost_weight = "1.5"
        default_diversity = 0

    rules = rules_from_row(Row())
    assert rules.repurchasable_categories == frozenset({3, 4, -5})
    assert rules.blocked == frozenset()
    assert rules.boosted_products == frozenset({7, 8})
    assert rules.boosted_categories == frozenset({9})
    assert rules.boost_weight == 1.5
    assert rules_from_row(None) == Rules()


def test_purchased_products_are_the_customers_purchases_only(store, items, make_customer):
    from shop_recs.activity.models import Event

    alice, bob = make_customer(store, "alice"), make_customer(store, "bob")
    rows = [
        (alice, items["M1"], "purchase"),
        (alice, items["M1"], "purchase"),
        (alice, items["S1"], "purchase"),
        (alice, items["M2"], "view"),
        (bob, items["H1"], "purchase"),
    ]
    with unscoped():
        Event.objects.bulk_create(
            Event(store=store, customer=c, product=p, event_type=t, timestamp=TS, order_id="o") for c, p, t in rows
        )
    with store_scope(store.pk):
        assert purchased_products(alice.pk) == {items["M1"].pk, items["S1"].pk}
        assert purchased_products(bob.pk) == {items["H1"].pk}


def test_score_only_fast_path_is_refused_with_pins_or_boosts(store, items):
    snap = catalog_snapshot(store)
    ctx = RuleContext(limit=3)
    assert ranks_by_score_alone(snap, Rules(), ctx)
    assert not ranks_by_score_alone(snap, Rules(pinned=(items["S1"].pk,)), ctx)
    assert not ranks_by_score_alone(snap, Rules(boosted_products=frozenset({items["S1"].pk})), ctx)
    assert not ranks_by_score_alone(snap, Rules(), RuleContext(limit=3, diversity=0.5))
    assert not ranks_by_score_alone(snap, Rules(), RuleContext())


def test_saved_pin_and_boost_change_the_served_order(store, items):
    scored = {"M1": 3.0, "M2": 2.0, "S1": 1.0, "H1": 0.5}
    assert _skus(items, apply_rules(store, _cands(items, scored), context=RuleContext(limit=3))) == ["M1", "M2", "S1"]
    _save_rules(store, pinned_product_ids=[items["H1"].pk])
    out = apply_rules(store, _cands(items, scored), context=RuleContext(limit=3))
    assert _skus(items, out) == ["H1", "M1", "M2"]
    assert out[0].reason_code == "pinned"
    _save_rules(store, pinned_product_ids=[], boosted_product_ids=[items["S1"].pk], boost_weight=4.0)
    assert _skus(items, apply_rules(store, _cands(items, scored), context=RuleContext(limit=2))) == ["S1", "M1"]


@pytest.mark.parametrize("diversity", [0.0, 0.5])
def test_pins_filling_the_limit_leave_no_room(store, items, diversity):
    _save_rules(store, pinned_product_ids=[items["H1"].pk, items["S1"].pk])
    scored = {"M1": 3.0, "M2": 2.0, "U1": 1.0}
    out = apply_rules(store, _cands(items, scored), context=RuleContext(limit=2, diversity=diversity))
    assert _skus(items, out) == ["H1", "S1"]
    assert [c.reason_code for c in out] == ["pinned", "pinned"]


def test_default_similarity_is_same_category_only(store, items):
    # Same category: diversity moves the shirt above the second mug.
    scored = {"M1": 3.0, "M2": 2.9, "S1": 1.0}
    out = apply_rules(store, _cands(items, scored), context=RuleContext(limit=3, diversity=0.9))
    assert _skus(items, out) == ["M1", "S1", "M2"]
    # Distinct categories, and uncategorised products (similar to nothing, not to each other): score order.
    scored = {"M1": 3.0, "U1": 2.9, "U2": 2.8, "S1": 2.7, "H1": 1.0}
    out = apply_rules(store, _cands(items, scored), context=RuleContext(limit=5, diversity=0.9))
    assert _skus(items, out) == ["M1", "U1", "U2", "S1", "H1"]
