"""Placements (issue #14): each placement's rules on every serving endpoint that takes ``placement``,
the fallback to the default placement, pins in similar items, the cache, and the data migration
that turned each store's former store-wide rules into its default placement."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta

import pytest
from django.apps import apps as global_apps

from shop_recs.serving import placements as plc
from shop_recs.serving.models import DEFAULT_PLACEMENT_KEY, Placement, StoreRules
from shop_recs.serving.rules import load_rules, placement_rules, placement_served
from shop_recs.stores.models import Store
from shop_recs.stores.scoping import store_scope, unscoped

pytestmark = pytest.mark.django_db
API = "/api/v1"
T1 = datetime(2024, 6, 3, 9, 0, tzinfo=UTC)

#: Every serving endpoint that takes ``placement`` (GET query or the session's JSON body).
ENDPOINTS = {
    "customer": lambda c, placement, n: c.get(f"{API}/recommendations/customer/C0", {"n": n, **placement}),
    "session": lambda c, placement, n: c.post(
        f"{API}/recommendations/session", {"viewed": ["M0"], "n": n, **placement}, format="json"
    ),
    "similar": lambda c, placement, n: c.get(f"{API}/products/M0/similar", {"n": n, **placement}),
    "fbt": lambda c, placement, n: c.get(f"{API}/products/M0/frequently-bought-together", {"n": n, **placement}),
    "popular": lambda c, placement, n: c.get(f"{API}/popular", {"n": n, **placement}),
    "trending": lambda c, placement, n: c.get(f"{API}/trending", {"n": n, **placement}),
}


def ask(client, endpoint: str, placement: str | None = None, n: int = 20) -> dict:
    response = ENDPOINTS[endpoint](client, {"placement": placement} if placement is not None else {}, n)
    assert response.status_code == 200, response.content
    return response.json()


def skus(body: dict) -> list[str]:
    return [item["sku"] for item in body["items"]]


def make_placement(store: Store, key: str, **rules) -> Placement:
    """A placement made through the service (rules copied from the default), then given ``rules``."""
    with store_scope(store):
        placement = plc.create_placement(store, None, key=key, name=key.title())
        row = plc.rules_row(placement)
        for column, value in rules.items():
            setattr(row, column, value)
        row.save()
    return placement


def set_default_rules(store: Store, **rules) -> None:
    with unscoped():
        row, _ = StoreRules.objects.get_or_create(store=store)
        for column, value in rules.items():
            setattr(row, column, value)
        row.save()


@pytest.fixture
def baskets(shop, make_customer, add_events):
    """Orders where M0 is bought with M1, M2, M3, N0 and S0 (twice each: above FBT_MIN_SUPPORT)."""
    from shop_recs.serving.fbt import build_fbt

    store, p = shop["products"]["M0"].store, shop["products"]
    buyer = make_customer(store, "BASKETS")
    rows = []
    for k, partner in enumerate(["M1", "M2", "M3", "N0", "S0"] * 2):
        at = T1 + timedelta(hours=k)
        rows += [(buyer, p["M0"], "purchase", at, f"b{k}"), (buyer, p[partner], "purchase", at, f"b{k}")]
    add_events(store, rows)
    build_fbt(store)
    return shop


# --- every endpoint ---------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_each_endpoint_applies_the_named_placements_rules(api_client, baskets, endpoint):
    store, p = baskets["products"]["M0"].store, baskets["products"]
    before = skus(ask(api_client, endpoint))
    assert len(before) >= 3, before
    blocked, boosted = before[0], before[-1]
    make_placement(
        store, "pdp", blocked_product_ids=[p[blocked].pk], boosted_product_ids=[p[boosted].pk], boost_weight=100.0
    )

    body = ask(api_client, endpoint, "pdp")
    got = skus(body)
    assert blocked not in got, (endpoint, got)
    assert got.index(boosted) < before.index(boosted), (endpoint, before, got)
    assert body["placement"] == "pdp" and body["rules_placement"] == "pdp"

    # The default placement (no placement, or one the store does not have) is untouched.
    for asked in (None, "", "cart"):
        body = ask(api_client, endpoint, asked)
        assert skus(body) == before, (endpoint, asked)
        assert body["rules_placement"] == DEFAULT_PLACEMENT_KEY


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_an_unknown_placement_gets_the_default_placements_rules_never_an_error(api_client, baskets, endpoint):
    store, p = baskets["products"]["M0"].store, baskets["products"]
    before = skus(ask(api_client, endpoint))
    set_default_rules(store, blocked_product_ids=[p[before[0]].pk])
    body = ask(api_client, endpoint, "no-such-placement")
    assert before[0] not in skus(body)
    assert body["placement"] == "no-such-placement"  # what the shop asked for, logged as such
    assert body["rules_placement"] == DEFAULT_PLACEMENT_KEY  # and whose rules served it


def test_the_served_list_is_logged_under_the_placement_asked_for(api_client, shop):
    from shop_recs.serving.models import RecommendationList

    make_placement(shop["products"]["M0"].store, "home")
    for placement in ("home", "newsletter"):
        list_id = ask(api_client, "customer", placement)["list_id"]
        with unscoped():
            assert RecommendationList.objects.get(list_id=list_id).placement == placement


# --- pins in similar items ------------------------------------------------------------------------------


def test_pins_lead_similar_items_too(api_client, shop, make_product):
    """The rules page says pinned products are "always at the top": similar items included."""
    store = shop["products"]["M0"].store
    hose = make_product(store, "HOSE", title="Garden hose")
    assert "HOSE" not in skus(ask(api_client, "similar", n=3))
    set_default_rules(store, pinned_product_ids=[hose.pk])
    body = ask(api_client, "similar", n=3)
    assert skus(body)[0] == "HOSE" and len(body["items"]) == 3
    assert body["items"][0]["reason"]["code"] == "pinned"


def test_a_placement_without_pins_keeps_similar_items_unpinned(api_client, shop, make_product):
    store = shop["products"]["M0"].store
    hose = make_product(store, "HOSE", title="Garden hose")
    set_default_rules(store, pinned_product_ids=[hose.pk])
    make_placement(store, "pdp", pinned_product_ids=[])
    assert "HOSE" not in skus(ask(api_client, "similar", "pdp"))
    assert skus(ask(api_client, "similar", "home"))[0] == "HOSE"  # unknown: the default's pin


def test_the_anchor_product_is_never_pinned_into_its_own_similar_items(api_client, shop):
    p = shop["products"]
    set_default_rules(shop["products"]["M0"].store, pinned_product_ids=[p["M0"].pk, p["S3"].pk])
    got = skus(ask(api_client, "similar"))
    assert got[0] == "S3" and "M0" not in got


# --- the algorithm a placement serves ------------------------------------------------------------------


def test_a_placement_can_serve_another_algorithm_of_the_active_run(api_client, shop):
    from shop_recs.serving.models import RecommendationList
    from shop_recs.training.models import ModelVersion
    from shop_recs.training.services import train_store

    store = shop["products"]["M0"].store
    train_store(store, algorithms=["item_knn", "popularity"])
    with unscoped():
        active = ModelVersion.objects.get(store=store, is_active=True)
        other = ModelVersion.objects.filter(run=active.run).exclude(pk=active.pk).get()
    placement = make_placement(store, "email")
    with unscoped():
        placement.algorithm = other.algorithm
        placement.save()
    body = ask(api_client, "customer", "email")
    assert body["algorithm"] == other.algorithm and body["model_version"] == other.pk
    with unscoped():
        assert RecommendationList.objects.get(list_id=body["list_id"]).model_version_id == other.pk
    default = ask(api_client, "customer")
    assert default["algorithm"] == active.algorithm and default["model_version"] == active.pk


def test_a_running_experiment_on_the_placement_still_decides_its_model(api_client, shop):
    """Experiments keep their placement: the running one on "pdp" answers, on top of pdp's rules."""
    from shop_recs.serving.models import Experiment, ExperimentStatus, Variant, VariantKind

    store, p = shop["products"]["M0"].store, shop["products"]
    make_placement(store, "pdp", blocked_product_ids=[p["M3"].pk])
    with unscoped():
        exp = Experiment.objects.create(store=store, name="pins", placement="pdp", status=ExperimentStatus.RUNNING)
        Variant.objects.create(
            store=store,
            experiment=exp,
            name="pinned",
            kind=VariantKind.RULES,
            traffic=100,
            rule_overrides={"pinned": [p["S1"].pk]},
        )
    body = ask(api_client, "customer", "pdp")
    assert body["experiment"] == exp.pk and body["variant"] == "pinned"
    assert skus(body)[0] == "S1" and "M3" not in skus(body)
    assert "experiment" not in ask(api_client, "customer", "home")


# --- the cache --------------------------------------------------------------------------------------


def test_placement_changes_reach_this_process_at_once(shop):
    store, p = shop["products"]["M0"].store, shop["products"]
    first = load_rules(store, "cart")
    assert placement_served(store, "cart") == DEFAULT_PLACEMENT_KEY
    placement = make_placement(store, "cart", pinned_product_ids=[p["S2"].pk])
    assert placement_served(store, "cart") == "cart"
    assert load_rules(store, "cart").pinned == (p["S2"].pk,)
    assert load_rules(store, "cart") is load_rules(store, "cart")  # cached again
    with store_scope(store):
        plc.delete_placement(placement, None)
    assert placement_served(store, "cart") == DEFAULT_PLACEMENT_KEY
    assert load_rules(store, "cart") == first


def test_other_processes_see_a_placement_edit_within_the_rules_ttl(shop, settings):
    """A write that sends no signal (another process's, as far as this one knows) is seen once the
    entry expires, like any rules change (SERVING_RULES_TTL)."""
    store, p = shop["products"]["M0"].store, shop["products"]
    make_placement(store, "cart")
    assert load_rules(store, "cart").pinned == ()
    with unscoped():
        StoreRules.objects.filter(placement__key="cart").update(pinned_product_ids=[p["S2"].pk])
    assert load_rules(store, "cart").pinned == ()  # this process's entry is still fresh
    settings.SERVING_RULES_TTL = 0
    assert load_rules(store, "cart").pinned == (p["S2"].pk,)


def test_placements_are_cached_per_store(shop, other_store):
    store = shop["products"]["M0"].store
    make_placement(store, "home", boost_weight=3.0)
    assert load_rules(store, "home").boost_weight == 3.0
    assert placement_served(other_store, "home") == DEFAULT_PLACEMENT_KEY
    assert load_rules(other_store, "home").boost_weight == 1.5
    assert set(placement_rules(other_store).by_key) == {DEFAULT_PLACEMENT_KEY}


# --- creation and the data migration ------------------------------------------------------------------


def test_every_new_store_gets_a_default_placement(make_store):
    store = make_store("Gamma", slug="gamma")
    with store_scope(store):
        assert plc.placement_choices(store) == [(DEFAULT_PLACEMENT_KEY, "Default")]
        placement = Placement.objects.get()
    assert placement.is_default and placement.key == DEFAULT_PLACEMENT_KEY


def test_placement_choices_put_the_default_first(store):
    with store_scope(store):
        for key in ("cart", "email", "home"):
            plc.create_placement(store, None, key=key, name=f"A {key}")
        assert plc.placement_choices(store) == [
            (DEFAULT_PLACEMENT_KEY, "Default"),
            ("cart", "A cart"),
            ("email", "A email"),
            ("home", "A home"),
        ]


def test_a_new_placement_starts_with_the_default_placements_rules(shop):
    store, p = shop["products"]["M0"].store, shop["products"]
    set_default_rules(store, pinned_product_ids=[p["S2"].pk], boost_weight=2.5, exclude_purchased=False)
    make_placement(store, "home")
    assert load_rules(store, "home") == load_rules(store)


def test_the_migration_makes_each_stores_rules_its_default_placement(make_store):
    migration = importlib.import_module("shop_recs.serving.migrations.0006_default_placement_from_store_rules")
    with_rules, without = make_store("Old", slug="old"), make_store("Older", slug="older")
    with unscoped():
        # As before placements: no placement rows, one rules row without a placement (bulk_create
        # skips StoreRules.save(), which would attach it).
        Placement.objects.filter(store__in=[with_rules, without]).delete()
        StoreRules.objects.bulk_create(
            [StoreRules(store=with_rules, pinned_product_ids=[7, 3], boost_weight=0.5, default_diversity=0.3)]
        )
        assert migration.create_default_placements(global_apps, None) == 2
        for store in (with_rules, without):
            assert Placement.objects.get(store=store).is_default
        row = StoreRules.objects.get(store=with_rules)
        assert row.placement == Placement.objects.get(store=with_rules, key=DEFAULT_PLACEMENT_KEY)
        assert row.pinned_product_ids == [7, 3] and row.boost_weight == 0.5
        assert not StoreRules.objects.filter(store=without).exists()
        # Running it again changes nothing.
        assert migration.create_default_placements(global_apps, None) == 0
        assert Placement.objects.filter(store__in=[with_rules, without]).count() == 2
    # Serving reads the migrated row as the default placement's rules.
    assert load_rules(with_rules).pinned == (7, 3) and load_rules(with_rules, "home").boost_weight == 0.5


def test_a_rules_row_saved_without_a_placement_belongs_to_the_default_placement(store):
    with unscoped():
        row = StoreRules.objects.create(store=store, boost_weight=4.0)
        assert row.placement.is_default and row.placement.store_id == store.pk
    assert load_rules(store).boost_weight == 4.0
