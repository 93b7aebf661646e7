"""The rules snapshot (``shop_recs/serving/rules_snapshot.py``): the mutants that survived.

Written from the survivors of the first full mutation run of this module (issue #17,
docs/benchmarks.md "Mutation testing"). The expected values come from the documented behaviour (the
module's and the functions' docstrings), not from the code.
"""

from __future__ import annotations

import logging
import re

import pytest
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext

from shop_recs.serving import placements as plc
from shop_recs.serving import rules_snapshot
from shop_recs.serving.models import DEFAULT_PLACEMENT_KEY, Placement, StoreRules
from shop_recs.serving.rules_snapshot import (
    PlacementRules,
    Rules,
    invalidate_rules,
    load_rules,
    placement_rules,
    placement_served,
)
from shop_recs.stores.scoping import store_scope, unscoped


def test_a_placement_without_an_algorithm_serves_the_live_model_as_the_empty_string():
    """``algorithm_for``: "" for the live model's, also for an unknown key (the default's)."""
    rules = PlacementRules(
        default_key="home", by_key={"home": Rules(), "cart": Rules()}, algorithms={"cart": "popular"}
    )
    assert rules.algorithm_for("cart") == "popular"
    assert rules.algorithm_for("home") == ""
    assert rules.algorithm_for("nowhere") == ""
    assert rules.algorithm_for("") == ""
    assert PlacementRules().algorithm_for("home") == ""


@pytest.mark.django_db
def test_every_placements_rules_in_one_query(store):
    """The docstring's "one query loads every placement of a store": the placements with their rules rows."""
    with store_scope(store):
        for key, weight in (("cart", 2.0), ("home", 3.0)):
            row = plc.rules_row(plc.create_placement(store, None, key=key, name=key.title()))
            row.boost_weight = weight
            row.save()
        plc.create_placement(store, None, key="email", name="Email")
        StoreRules.objects.filter(placement__key="email").delete()  # a placement without a rules row
    invalidate_rules()
    with CaptureQueriesContext(connection) as queries:
        loaded = placement_rules(store)
    assert len(queries) == 1
    assert {k: r.boost_weight for k, r in loaded.by_key.items()} == {
        DEFAULT_PLACEMENT_KEY: 1.5,
        "cart": 2.0,
        "home": 3.0,
        "email": 1.5,  # no row: the defaults
    }
    assert loaded.by_key["email"] == Rules()


@pytest.mark.django_db
def test_without_a_default_placement_a_rules_row_without_one_applies_store_wide(store, other_store):
    """A store made without the post_save signal has no default placement: its rules row saved before
    placements (no placement) is its default rules, for "" and any key it does not have. Another
    store's such row is not (the read is this store's)."""
    with unscoped():
        Placement.objects.filter(store__in=[store, other_store]).delete()
        cart = Placement.objects.create(store=store, key="cart", name="Cart")  # not the default
        # bulk_create skips StoreRules.save(), which would attach a placement. Lowest pks first: the
        # other store's row, then the cart's.
        StoreRules.objects.bulk_create(
            [
                StoreRules(store=other_store, boost_weight=9.0),
                StoreRules(store=store, placement=cart, boost_weight=2.0),
                StoreRules(store=store, pinned_product_ids=[7, 3], boost_weight=0.5),
            ]
        )
    invalidate_rules()
    store_wide = Rules(pinned=(7, 3), boost_weight=0.5)
    assert load_rules(store) == store_wide
    assert load_rules(store, "home") == store_wide
    assert load_rules(store, "cart") == Rules(boost_weight=2.0)  # its own placement's row
    loaded = placement_rules(store)
    assert loaded.default_key == DEFAULT_PLACEMENT_KEY
    assert loaded.by_key == {"cart": Rules(boost_weight=2.0), DEFAULT_PLACEMENT_KEY: store_wide}
    assert placement_served(store, "home") == DEFAULT_PLACEMENT_KEY


@pytest.mark.django_db
def test_without_any_rules_row_or_placement_the_defaults_apply(store):
    with unscoped():
        Placement.objects.filter(store=store).delete()
    invalidate_rules()
    assert load_rules(store) == Rules()
    assert placement_rules(store).by_key == {DEFAULT_PLACEMENT_KEY: Rules()}


def _refuse(execute, sql, params, many, context):
    raise OperationalError("connection to server at 127.0.0.1 failed: Connection refused")


@pytest.mark.django_db
def test_serving_old_rules_during_an_outage_is_logged_with_the_store(store, settings, caplog):
    """Keeping a store's rules while the database is down is a WARNING that says so and names the store
    (what an operator needs to find which stores serve stale rules)."""
    settings.SERVING_RULES_TTL = 0  # every read tries the database again
    cached = load_rules(store)
    with caplog.at_level(logging.WARNING, logger=rules_snapshot.__name__), connection.execute_wrapper(_refuse):
        assert load_rules(store) is cached
    [record] = [r for r in caplog.records if r.name == rules_snapshot.__name__]
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert message.startswith("database unreachable")
    assert re.search(rf"\bstore {store.pk}\b", message), message
