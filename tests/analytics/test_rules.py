from __future__ import annotations

import pytest

from analytics.models import CustomerProfile
from analytics.rules_builder import RuleError, compile_rules
from analytics.services import build_profiles
from shop_recs.stores.scoping import store_scope

from .conftest import AS_OF


@pytest.mark.parametrize(
    ("tree", "message"),
    [
        ({"all": [{"field": "password", "op": "=", "value": "x"}]}, "all[0].field: unknown field 'password'"),
        ({"field": "monetary", "op": "LIKE", "value": 5}, "op: operator 'LIKE' is not allowed"),
        ({"field": "monetary", "op": ">", "value": "500"}, "value: expected a finite number"),
        ({"field": "monetary", "op": ">", "value": True}, "expected a finite number"),
        ({"field": "monetary", "op": ">", "value": float("nan")}, "finite number"),
        ({"field": "country", "op": "=", "value": 3}, "expected a string"),
        ({"field": "monetary; DROP TABLE x", "op": ">", "value": 1}, "unknown field"),
        ({"field": "monetary", "op": ">", "value": 1, "extra": "__class__"}, "unexpected key"),
        ({"all": []}, "non-empty list"),
        ({"all": [], "any": []}, "exactly one key"),
        ([1, 2], "non-empty JSON object"),
        (
            {
                "not": {
                    "not": {"not": {"not": {"not": {"not": {"not": {"field": "frequency", "op": ">", "value": 1}}}}}}
                }
            },
            "nesting is deeper",
        ),
        ({"any": [{"field": "frequency", "op": ">", "value": i} for i in range(51)]}, "more than 50 conditions"),
        ({"field": "recency_days", "op": "between", "value": [5, 1]}, "greater than high"),
        ({"field": "purchased_in_category", "category": "X", "within_days": "30"}, "within_days"),
    ],
)
def test_rejects_malformed_and_malicious(tree, message):
    with pytest.raises(RuleError) as err:
        compile_rules(tree)
    assert message in str(err.value)


@pytest.mark.django_db
def test_compiles_to_right_audience(shop):
    store = shop["store"]
    build_profiles(store, "full", segment=False, as_of=AS_OF)
    c1, c2, c3, c4, c5, c6 = shop["customers"]

    def audience(tree):
        with store_scope(store):
            return set(CustomerProfile.objects.filter(compile_rules(tree)).values_list("customer_id", flat=True))

    assert audience(
        {"all": [{"field": "monetary", "op": ">", "value": 500}, {"field": "recency_days", "op": ">", "value": 60}]}
    ) == {c5.pk}
    assert audience({"field": "category_affinity", "key": "Electronics", "op": ">", "value": 0.3}) == {
        c1.pk,
        c4.pk,
        c5.pk,
    }
    assert audience({"field": "category_affinity", "key": "Electronics", "op": "<", "value": 0.1}) == {
        c2.pk,
        c3.pk,
        c6.pk,
    }
    assert audience({"not": {"field": "frequency", "op": ">=", "value": 1}}) == {c4.pk, c6.pk}
    assert audience(
        {"any": [{"field": "price_band", "op": "=", "value": "premium"}, {"field": "frequency", "op": "=", "value": 3}]}
    ) == {c1.pk, c3.pk, c5.pk}
    # behaviour: "now" is the real clock, and the fixture's data is anchored at AS_OF, so use a wide window
    assert audience({"field": "purchased_in_category", "category": "Home", "within_days": 3650}) == {c2.pk, c3.pk}
    assert audience({"field": "country", "op": "=", "value": "' OR 1=1 --"}) == set()
