"""Rule overrides of experiment variants are validated like rules, when saved and when served
(issue 12 §2).

The reproduction: as analyst, an experiment with variant rules ``{"boost_weight": "x"}`` (also
``{"pinned": 5}``, ``{"diversity": "abc"}``) at 100% traffic made every recommendation of that
placement return 500.
"""

from __future__ import annotations

import pytest

from analytics.experiments import services
from shop_recs.serving.experiments import invalidate as invalidate_experiments
from shop_recs.serving.models import StoreRules, Variant
from shop_recs.serving.overrides import InvalidOverride, clean_overrides
from shop_recs.stores.scoping import store_scope, unscoped

BAD = [{"boost_weight": "x"}, {"pinned": 5}, {"diversity": "abc"}, {"diversity": 3}, {"no_such_rule": True}]


def _variants(overrides, control_traffic=50):
    return [
        {"name": "control", "kind": "rules", "rule_overrides": {}, "traffic": control_traffic},
        {"name": "treatment", "kind": "rules", "rule_overrides": overrides, "traffic": 100 - control_traffic},
    ]


@pytest.mark.parametrize("overrides", BAD)
def test_a_bad_override_is_refused_when_saved(store, overrides):
    field = next(iter(overrides))
    with pytest.raises(services.ExperimentError, match=f"Variant treatment: .*{field}"):
        services.create_experiment(store, name="bad", placement="home", variants=_variants(overrides))


def test_clean_overrides_converts_to_rule_types():
    assert clean_overrides({"pinned": [3, 1, 3], "blocked": [2], "boost_weight": 2, "exclude_inactive": False}) == {
        "pinned": (3, 1),
        "blocked": frozenset({2}),
        "boost_weight": 2.0,
        "exclude_inactive": False,
    }
    with pytest.raises(InvalidOverride, match="exclude_purchased must be true or false"):
        clean_overrides({"exclude_purchased": "no"})
    with pytest.raises(InvalidOverride, match="boost_weight"):
        clean_overrides({"boost_weight": float("nan")})


@pytest.mark.parametrize("overrides", BAD[:3])
def test_a_bad_override_already_in_the_database_serves_the_control(api_client, store, shop, overrides, caplog):
    exp = services.create_experiment(store, name="old row", placement="home", variants=_variants({}, control_traffic=0))
    with store_scope(store):
        services.start_experiment(exp)
    with unscoped():  # a row written before validation existed
        Variant.objects.filter(experiment=exp, name="treatment").update(rule_overrides=overrides)
    invalidate_experiments()
    for customer in ("C0", "C1", "C2"):
        response = api_client.get(f"/api/v1/recommendations/customer/{customer}?placement=home&n=5")
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["variant"] == "treatment" and len(body["items"]) > 0
    assert "serving the control" in caplog.text


def test_promoting_a_rules_variant_writes_the_store_rules_columns(store, shop, merchant, settings):
    settings.EXPERIMENT_PROMOTE_MIN_IMPRESSIONS = 0
    product_ids = [shop["products"]["M0"].pk, shop["products"]["S1"].pk]
    overrides = {"pinned": product_ids[::-1], "diversity": 0.4, "boost_weight": 2.5}
    exp = services.create_experiment(store, name="pins", placement="home", variants=_variants(overrides))
    with store_scope(store):
        services.start_experiment(exp)
        variant = exp.variants.get(name="treatment")
        services.promote_variant(exp, variant, user=merchant, override=True)
        rules = StoreRules.objects.get(store=store)
    assert rules.pinned_product_ids == product_ids[::-1]  # "pinned" was silently ignored before
    assert (rules.default_diversity, rules.boost_weight) == (0.4, 2.5)
