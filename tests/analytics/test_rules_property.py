"""Property test of the rule compiler: the compiled ``Q`` selects exactly the profiles that a plain
Python reading of the same rule selects, for random small profiles and random one- or two-condition
rules.

Values are drawn from small sets so rules and profiles often meet at a boundary (``between`` ends,
``<=`` vs ``<``, ``!=`` against NULL), where the planted bugs live. Each example writes its profiles
inside a savepoint that is rolled back (so examples do not see each other's rows) and checks several
rules against them.
"""

from __future__ import annotations

import operator
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.models import CustomerProfile
from analytics.rules_builder import compile_rules
from shop_recs.activity.models import Event
from shop_recs.catalog.models import Category
from shop_recs.stores.scoping import store_scope, unscoped

NUMBERS = [0, 1, 2, 5]
NULLABLE = ("recency_days", "aov", "median_gap_days")
NOT_NULL = ("frequency", "monetary", "r_score")
STRINGS = {
    "price_band": ["", "budget", "mid", "premium"],
    "country": ["", "DE", "FR", "US"],
    "age_band": ["", "18-24", "25-34"],
    "gender": ["", "f", "m"],
}
CUSTOMER_FIELDS = ("country", "age_band", "gender")
AFFINITY_KEYS = ["Home", "Home > Garden", "Toys"]
AFFINITY_VALUES = [0.0, 0.25, 0.5, 1.0]
CATEGORIES = ["Home", "Home > Garden", "Homeware", "Toys"]
# Event ages and windows never coincide, so the real clock moving between insert and query is harmless.
EVENT_DAYS = [1, 10, 45, 100]
WINDOWS = [7, 30, 60]
BEHAVIOUR = {"purchased_in_category": "purchase", "viewed_in_category": "view"}
CMP = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "=": operator.eq}

# --- strategies -------------------------------------------------------------------------------------

number = st.sampled_from(NUMBERS)
affinity = st.dictionaries(st.sampled_from(AFFINITY_KEYS), st.sampled_from(AFFINITY_VALUES), max_size=3)
event = st.tuples(st.sampled_from(["purchase", "view"]), st.sampled_from(CATEGORIES), st.sampled_from(EVENT_DAYS))

profile = st.fixed_dictionaries(
    {
        **{f: st.none() | number.map(float) for f in NULLABLE},
        "frequency": number,
        "monetary": number.map(float),
        "r_score": st.integers(1, 5),
        **{f: st.sampled_from(values) for f, values in STRINGS.items()},
        "category_affinity": affinity,
        "brand_affinity": st.dictionaries(st.sampled_from(["Acme", "Casa"]), st.sampled_from(AFFINITY_VALUES)),
        "events": st.lists(event, max_size=3),
    }
)


NUMERIC_OPS = [">", ">=", "<", "<=", "=", "!="]


def _seen(profiles, field, key=None):
    """Mostly a value some profile holds (a boundary for that profile), sometimes any small value."""
    if key is None:
        values = sorted({p[field] for p in profiles if p[field] is not None})
        other = number
    else:
        values = sorted({p[field][key] for p in profiles if key in p[field]})
        other = st.sampled_from(AFFINITY_VALUES)
    return st.sampled_from(values) | other if values else other


def rules_for(profiles):
    """One- or two-condition rules whose values are drawn from the profiles' own values."""

    @st.composite
    def numeric_cond(draw):
        field = draw(st.sampled_from(NULLABLE + NOT_NULL))
        return {"field": field, "op": draw(st.sampled_from(NUMERIC_OPS)), "value": draw(_seen(profiles, field))}

    @st.composite
    def between(draw):
        field = draw(st.sampled_from(NULLABLE + NOT_NULL))
        low, high = sorted((draw(_seen(profiles, field)), draw(_seen(profiles, field))))
        return {"field": field, "op": "between", "value": [low, high]}

    @st.composite
    def string_cond(draw):
        field = draw(st.sampled_from(sorted(STRINGS)))
        op = draw(st.sampled_from(["=", "!=", "in", "not_in"]))
        choices = st.sampled_from(STRINGS[field])
        value = draw(st.lists(choices, min_size=1, max_size=3)) if op in ("in", "not_in") else draw(choices)
        return {"field": field, "op": op, "value": value}

    @st.composite
    def affinity_cond(draw):
        field = draw(st.sampled_from(["category_affinity", "brand_affinity"]))
        keys = [*AFFINITY_KEYS, "Absent"] if field == "category_affinity" else ["Acme", "Casa", "Absent"]
        key = draw(st.sampled_from(keys))
        op = draw(st.sampled_from(NUMERIC_OPS))
        return {"field": field, "key": key, "op": op, "value": draw(_seen(profiles, field, key))}

    behaviour_cond = st.fixed_dictionaries(
        {"field": st.sampled_from(sorted(BEHAVIOUR)), "category": st.sampled_from([*CATEGORIES, "Hom"])},
        optional={"within_days": st.sampled_from(WINDOWS)},
    )
    condition = st.one_of(numeric_cond(), between(), string_cond(), affinity_cond(), behaviour_cond)
    return st.one_of(
        condition,
        st.builds(lambda c: {"not": c}, condition),
        st.builds(lambda a, b: {"all": [a, b]}, condition, condition),
        st.builds(lambda a, b: {"any": [a, b]}, condition, condition),
    )


# --- the reference: the rule read in plain Python -----------------------------------------------------


def matches(node: dict, p: dict) -> bool:
    if "all" in node:
        return all(matches(child, p) for child in node["all"])
    if "any" in node:
        return any(matches(child, p) for child in node["any"])
    if "not" in node:
        return not matches(node["not"], p)
    field, op, value = node["field"], node.get("op"), node.get("value")
    if field in BEHAVIOUR:
        cat, window = node["category"], node.get("within_days", 30)
        return any(
            etype == BEHAVIOUR[field] and (path == cat or path.startswith(f"{cat} > ")) and days < window
            for etype, path, days in p["events"]
        )
    if field in ("category_affinity", "brand_affinity"):
        v = p[field].get(node["key"], 0.0)  # absent key: no affinity, i.e. 0
        return v != value if op == "!=" else CMP[op](v, value)
    v = p[field]
    if field in STRINGS:
        return {"=": v == value, "!=": v != value, "in": v in value, "not_in": v not in value}[op]
    if op == "!=":
        return v is None or v != value  # "not equal to 10" keeps customers with no value
    if v is None:
        return False
    if op == "between":
        return value[0] <= v <= value[1]
    return CMP[op](v, value)


# --- the property -----------------------------------------------------------------------------------


@pytest.mark.django_db
@settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(profiles=st.lists(profile, min_size=2, max_size=6), data=st.data())
def test_compiled_rule_selects_what_python_selects(store, make_customer, make_product, profiles, data):
    trees = data.draw(st.lists(rules_for(profiles), min_size=4, max_size=16), label="rules")
    with transaction.atomic():
        now = timezone.now()
        with unscoped():
            products = {
                path: make_product(
                    store, f"sku-{path}", category=Category.objects.create(store=store, name=path, path=path)
                )
                for path in CATEGORIES
            }
            pks = []
            for i, p in enumerate(profiles):
                cust = make_customer(store, f"h{i}", **{f: p[f] for f in CUSTOMER_FIELDS})
                CustomerProfile.objects.create(
                    store=store,
                    customer=cust,
                    **{f: p[f] for f in (*NULLABLE, *NOT_NULL, "price_band", "category_affinity", "brand_affinity")},
                )
                for etype, path, days in p["events"]:
                    Event.objects.create(
                        store=store,
                        customer=cust,
                        event_type=etype,
                        product=products[path],
                        timestamp=now - timedelta(days=days, hours=1),
                    )
                pks.append(cust.pk)
        # Several rules per example against the same rows: more rules meet a boundary per insert.
        for tree in trees:
            expected = {pk for pk, p in zip(pks, profiles, strict=True) if matches(tree, p)}
            with store_scope(store):
                got = set(CustomerProfile.objects.filter(compile_rules(tree)).values_list("customer_id", flat=True))
            assert got == expected, tree
        transaction.set_rollback(True)
