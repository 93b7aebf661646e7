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


# --- Every operator and field kind on a hand-made grid of profiles, boundaries included. ---------

_GRID = {
    # name: (profile fields, customer fields)
    "null": ({"recency_days": None, "aov": None, "frequency": 0, "monetary": 0.0}, {}),
    "p5": (
        {
            "recency_days": 5.0,
            "aov": 50.0,
            "frequency": 1,
            "monetary": 50.0,
            "churn_risk": 0.25,
            "price_band": "budget",
            "category_affinity": {"Home": 0.2, "Home > Garden": 0.5},
            "brand_affinity": {"Acme": 0.7},
        },
        {"country": "DE", "age_band": "18-24", "gender": "f"},
    ),
    "p10": (
        {
            "recency_days": 10.0,
            "aov": 50.25,
            "frequency": 2,
            "monetary": 100.5,
            "churn_risk": 0.5,
            "price_band": "mid",
            "category_affinity": {"Home": 0.5},
            "brand_affinity": {"Acme": 0.3, "Casa": 0.3},
        },
        {"country": "FR", "age_band": "25-34", "gender": "m"},
    ),
    "p20": (
        {
            "recency_days": 20.0,
            "aov": 100.0,
            "frequency": 3,
            "monetary": 300.0,
            "churn_risk": 0.75,
            "price_band": "premium",
            "category_affinity": {"Toys": 1.0},
            "brand_affinity": {"Casa": 1.0},
        },
        {"country": "US", "age_band": "25-34", "gender": "f"},
    ),
    "p30": (
        {"recency_days": 30.0, "aov": 10.0, "frequency": 1, "monetary": 10.0, "churn_risk": 1.0, "price_band": "mid"},
        {"country": "DE", "age_band": "65+", "gender": ""},
    ),
}


@pytest.fixture
def grid(store, make_customer, make_product, other_store):
    """Five profiles with known values, and behaviour events relative to the real clock."""
    from datetime import timedelta

    from django.utils import timezone

    from shop_recs.activity.models import Event
    from shop_recs.catalog.models import Category
    from shop_recs.stores.scoping import unscoped

    ids = {}
    with unscoped():
        for name, (profile, customer) in _GRID.items():
            cust = make_customer(store, name, **customer)
            CustomerProfile.objects.create(store=store, customer=cust, **profile)
            ids[name] = cust.pk
        # A profile in another store matching everything numeric: it must never appear.
        foreign = make_customer(other_store, "foreign", country="DE")
        CustomerProfile.objects.create(store=other_store, customer=foreign, recency_days=5.0, frequency=1)
        cats = {
            path: Category.objects.create(store=store, name=path.split(" > ")[-1], path=path)
            for path in ("Home", "Home > Garden", "Homeware", "Toys")
        }
        prods = {path: make_product(store, f"sku-{path}", category=cat) for path, cat in cats.items()}
        now = timezone.now()

        def event(name, etype, path, days_ago):
            Event.objects.create(
                store=store,
                customer_id=ids[name],
                event_type=etype,
                product=prods[path],
                timestamp=now - timedelta(days=days_ago),
            )

        event("p5", "purchase", "Home > Garden", 3)  # subtree of Home, recent
        event("p10", "view", "Homeware", 3)  # a sibling whose name starts with "Home": not in Home
        event("p10", "purchase", "Homeware", 3)
        event("p20", "purchase", "Home", 40)  # Home, but only within 60 days
        event("p30", "purchase", "Toys", 3)
        event("p30", "view", "Home", 3)
    names = {pk: name for name, pk in ids.items()}

    def audience(tree):
        with store_scope(store):
            pks = CustomerProfile.objects.filter(compile_rules(tree)).values_list("customer_id", flat=True)
            return {names[pk] for pk in pks}

    return audience


ALL = set(_GRID)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("tree", "expected"),
    [
        # between is inclusive at both ends; NULL is never between anything
        ({"field": "recency_days", "op": "between", "value": [5, 20]}, {"p5", "p10", "p20"}),
        ({"field": "recency_days", "op": "between", "value": [10, 10]}, {"p10"}),
        ({"field": "recency_days", "op": "between", "value": [5.5, 19.5]}, {"p10"}),
        ({"field": "frequency", "op": "between", "value": [1, 2]}, {"p5", "p10", "p30"}),
        ({"field": "monetary", "op": "between", "value": [50, 100.5]}, {"p5", "p10"}),
        # comparisons at the boundary value; NULL matches none of them
        ({"field": "recency_days", "op": "<=", "value": 10}, {"p5", "p10"}),
        ({"field": "recency_days", "op": "<", "value": 10}, {"p5"}),
        ({"field": "recency_days", "op": ">=", "value": 20}, {"p20", "p30"}),
        ({"field": "recency_days", "op": ">", "value": 20}, {"p30"}),
        ({"field": "recency_days", "op": "=", "value": 20}, {"p20"}),
        ({"field": "frequency", "op": "<=", "value": 1}, {"null", "p5", "p30"}),
        ({"field": "frequency", "op": "<", "value": 1}, {"null"}),
        ({"field": "frequency", "op": ">=", "value": 2}, {"p10", "p20"}),
        ({"field": "frequency", "op": ">", "value": 2}, {"p20"}),
        ({"field": "aov", "op": "<=", "value": 50.25}, {"p5", "p10", "p30"}),
        ({"field": "aov", "op": ">=", "value": 50.25}, {"p10", "p20"}),
        ({"field": "churn_risk", "op": "<=", "value": 0.5}, {"null", "p5", "p10"}),
        ({"field": "churn_risk", "op": ">", "value": 0.5}, {"p20", "p30"}),
        # != keeps NULL rows ("not 10 days" includes customers who never bought)
        ({"field": "recency_days", "op": "!=", "value": 10}, {"null", "p5", "p20", "p30"}),
        ({"field": "aov", "op": "!=", "value": 50}, {"null", "p10", "p20", "p30"}),
        ({"field": "frequency", "op": "!=", "value": 1}, {"null", "p10", "p20"}),
        # not(...) of a comparison: NULL rows fail the comparison, so they pass its negation
        ({"not": {"field": "recency_days", "op": "<=", "value": 10}}, {"null", "p20", "p30"}),
        ({"not": {"field": "recency_days", "op": "between", "value": [5, 20]}}, {"null", "p30"}),
        ({"not": {"field": "recency_days", "op": "!=", "value": 10}}, {"p10"}),
        # strings (profile field and customer fields)
        ({"field": "price_band", "op": "=", "value": "mid"}, {"p10", "p30"}),
        ({"field": "price_band", "op": "!=", "value": "mid"}, {"null", "p5", "p20"}),
        ({"field": "price_band", "op": "in", "value": ["budget", "premium"]}, {"p5", "p20"}),
        ({"field": "price_band", "op": "not_in", "value": ["budget", "premium"]}, {"null", "p10", "p30"}),
        ({"field": "price_band", "op": "=", "value": ""}, {"null"}),
        ({"field": "country", "op": "=", "value": "DE"}, {"p5", "p30"}),
        ({"field": "country", "op": "!=", "value": "DE"}, {"null", "p10", "p20"}),
        ({"field": "country", "op": "in", "value": ["FR", "US", "XX"]}, {"p10", "p20"}),
        ({"field": "country", "op": "not_in", "value": ["FR", "US"]}, {"null", "p5", "p30"}),
        ({"field": "age_band", "op": "=", "value": "25-34"}, {"p10", "p20"}),
        ({"field": "age_band", "op": "not_in", "value": ["25-34"]}, {"null", "p5", "p30"}),
        ({"field": "gender", "op": "in", "value": ["f"]}, {"p5", "p20"}),
        ({"field": "gender", "op": "!=", "value": "f"}, {"null", "p10", "p30"}),
        # affinities: an absent key counts as 0; keys with " > " address a subtree entry
        ({"field": "category_affinity", "key": "Home", "op": ">=", "value": 0.2}, {"p5", "p10"}),
        ({"field": "category_affinity", "key": "Home", "op": ">", "value": 0.2}, {"p10"}),
        ({"field": "category_affinity", "key": "Home", "op": "<=", "value": 0.2}, {"null", "p5", "p20", "p30"}),
        ({"field": "category_affinity", "key": "Home", "op": "<", "value": 0.2}, {"null", "p20", "p30"}),
        ({"field": "category_affinity", "key": "Home", "op": "=", "value": 0.5}, {"p10"}),
        ({"field": "category_affinity", "key": "Home", "op": "!=", "value": 0.5}, {"null", "p5", "p20", "p30"}),
        ({"field": "category_affinity", "key": "Home", "op": "=", "value": 0}, {"null", "p20", "p30"}),
        ({"field": "category_affinity", "key": "Home > Garden", "op": ">", "value": 0.4}, {"p5"}),
        ({"field": "category_affinity", "key": "Toys", "op": "!=", "value": 0}, {"p20"}),
        ({"field": "brand_affinity", "key": "Acme", "op": ">=", "value": 0.3}, {"p5", "p10"}),
        ({"field": "brand_affinity", "key": "Casa", "op": "<=", "value": 0.3}, {"null", "p5", "p10", "p30"}),
        ({"field": "brand_affinity", "key": "Casa", "op": "<", "value": 0.3}, {"null", "p5", "p30"}),
        ({"field": "brand_affinity", "key": "Nope", "op": "<", "value": 0.1}, ALL),
        # behaviour: the category or its subtree (not a sibling sharing a prefix), inside the window
        ({"field": "purchased_in_category", "category": "Home", "within_days": 7}, {"p5"}),
        ({"field": "purchased_in_category", "category": "Home"}, {"p5"}),  # default window: 30 days
        ({"field": "purchased_in_category", "category": "Home", "within_days": 60}, {"p5", "p20"}),
        ({"field": "purchased_in_category", "category": "Home > Garden", "within_days": 60}, {"p5"}),
        ({"field": "purchased_in_category", "category": "Homeware", "within_days": 7}, {"p10"}),
        ({"field": "purchased_in_category", "category": "Toys", "op": "within", "within_days": 7}, {"p30"}),
        ({"field": "viewed_in_category", "category": "Home", "within_days": 7}, {"p30"}),
        ({"field": "viewed_in_category", "category": "Homeware", "within_days": 7}, {"p10"}),
        ({"field": "viewed_in_category", "category": "Toys", "within_days": 7}, set()),
        ({"field": "purchased_in_category", "category": "Hom", "within_days": 3650}, set()),
        ({"not": {"field": "purchased_in_category", "category": "Home", "within_days": 60}}, ALL - {"p5", "p20"}),
        # groups
        (
            {"all": [{"field": "country", "op": "=", "value": "DE"}, {"field": "frequency", "op": "<=", "value": 1}]},
            {"p5", "p30"},
        ),
        (
            {
                "any": [
                    {"field": "recency_days", "op": "<", "value": 10},
                    {"field": "viewed_in_category", "category": "Home", "within_days": 7},
                ]
            },
            {"p5", "p30"},
        ),
    ],
)
def test_every_operator_and_field_kind(grid, tree, expected):
    assert grid(tree) == expected


def test_field_catalogue_lists_every_compiled_operator():
    from analytics.rules_builder import (
        AFFINITY_FIELDS,
        BEHAVIOUR_FIELDS,
        NUMERIC_FIELDS,
        STRING_FIELDS,
        field_catalogue,
    )

    by_field = {row["field"]: row["ops"] for row in field_catalogue()}
    assert set(by_field) == {*NUMERIC_FIELDS, *STRING_FIELDS, *AFFINITY_FIELDS, *BEHAVIOUR_FIELDS}
    assert set(by_field["recency_days"]) == {">", ">=", "<", "<=", "=", "!=", "between"}
    assert set(by_field["country"]) == {"=", "!=", "in", "not_in"}
    assert set(by_field["brand_affinity"]) == {">", ">=", "<", "<=", "=", "!="}
    # every operator the catalogue offers compiles
    for field, ops in by_field.items():
        for op in ops:
            if field in BEHAVIOUR_FIELDS:
                tree = {"field": field, "op": op, "category": "X", "within_days": 5}
            elif field in AFFINITY_FIELDS:
                tree = {"field": field, "key": "X", "op": op, "value": 0.5}
            elif field in STRING_FIELDS:
                tree = {"field": field, "op": op, "value": ["a"] if op in ("in", "not_in") else "a"}
            else:
                tree = {"field": field, "op": op, "value": [1, 2] if op == "between" else 1}
            with store_scope(1):  # behaviour conditions build an Event subquery (no query runs)
                compile_rules(tree)


@pytest.mark.parametrize(
    ("tree", "message"),
    [
        ({"field": "recency_days", "op": "between", "value": 5}, "needs a list [low, high]"),
        ({"field": "recency_days", "op": "between", "value": [1, 2, 3]}, "needs a list [low, high]"),
        ({"field": "recency_days", "op": "between", "value": [1, "2"]}, "value[1]: expected a finite number"),
        ({"field": "recency_days", "op": "in", "value": [1]}, "not allowed for recency_days"),
        ({"field": "country", "op": ">", "value": "DE"}, "not allowed for country"),
        ({"field": "country", "op": "in", "value": []}, "non-empty list"),
        ({"field": "country", "op": "in", "value": "DE"}, "non-empty list"),
        ({"field": "country", "op": "not_in", "value": ["DE", 3]}, "value[1]: expected a string"),
        ({"field": "category_affinity", "key": "Home", "op": "between", "value": [0, 1]}, "not allowed"),
        ({"field": "category_affinity", "op": ">", "value": 0.1}, "key: expected a string"),
        ({"field": "viewed_in_category", "category": "Home", "op": ">"}, "use 'within'"),
        ({"field": "viewed_in_category", "category": "Home", "within_days": 0}, "within_days"),
        ({"field": "viewed_in_category", "category": "Home", "within_days": True}, "within_days"),
        ({"field": "frequency", "op": ">"}, "value: missing"),
    ],
)
def test_rejects_operator_value_mismatches(tree, message):
    with pytest.raises(RuleError) as err:
        compile_rules(tree)
    assert message in str(err.value)
