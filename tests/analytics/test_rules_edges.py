"""Boundaries and exact errors of the rule-segment compiler (mutation-testing gaps, docs/benchmarks.md).

``test_rules.py`` checks that bad trees raise ``RuleError``; these pin what the dashboard user is
told (``path`` and message) and the limits themselves: ``within_days`` 1, exactly ``MAX_CONDITIONS``
conditions, nesting exactly ``MAX_DEPTH`` deep, and the field catalogue the rule form reads.
"""

from __future__ import annotations

import pytest

from analytics.rules_builder import (
    ALL_FIELDS,
    MAX_CONDITIONS,
    MAX_DEPTH,
    MAX_STRING,
    RuleError,
    compile_rules,
    field_catalogue,
)
from shop_recs.stores.scoping import unscoped

COND = {"field": "frequency", "op": ">=", "value": 1}
BETWEEN = {"field": "frequency", "op": "between"}


def _all(cond) -> dict:
    return {"all": [cond]}


def _error(tree) -> RuleError:
    with pytest.raises(RuleError) as exc:
        compile_rules(tree)
    return exc.value


@pytest.mark.parametrize("days", [1, 3650])
def test_behaviour_within_days_bounds_are_inclusive(days):
    with unscoped():  # the behaviour condition builds an Event subquery
        compile_rules({"field": "purchased_in_category", "op": "within", "category": "Home", "within_days": days})


@pytest.mark.parametrize("days", [0, 3651])
def test_behaviour_within_days_outside_bounds_is_refused(days):
    err = _error({"field": "viewed_in_category", "category": "Home", "within_days": days})
    assert err.path == ".within_days"
    assert str(err) == f".within_days: expected a whole number of days 1..3650, got {days!r}"


def test_exactly_max_conditions_compile_and_one_more_fails():
    compile_rules({"all": [COND] * MAX_CONDITIONS})
    err = _error({"all": [COND] * (MAX_CONDITIONS + 1)})
    assert err.path == f"all[{MAX_CONDITIONS}]"
    assert str(err) == f"all[{MAX_CONDITIONS}]: more than {MAX_CONDITIONS} conditions"


def _nested(levels: int) -> dict:
    tree: dict = COND
    for _ in range(levels):
        tree = {"all": [tree]}
    return tree


def test_nesting_exactly_max_depth_compiles_and_one_deeper_fails():
    compile_rules(_nested(MAX_DEPTH))
    err = _error(_nested(MAX_DEPTH + 1))
    assert err.path == "all" + "[0].all" * MAX_DEPTH + "[0]"
    assert str(err).endswith(f"nesting is deeper than {MAX_DEPTH} levels")


def test_top_level_errors_name_the_top_level_path():
    err = _error({"field": "frequency", "op": "~", "value": 1})
    assert err.path == "op"
    assert str(err) == "op: operator '~' is not allowed for frequency; use one of > >= < <= = != between"
    assert _error({"op": ">", "value": 1}).path == "field"
    assert _error({"field": "frequency", "op": ">"}).path == "value"


@pytest.mark.parametrize(
    ("tree", "path", "message"),
    [
        ({"all": [{"op": ">", "value": 1}]}, "all[0].field", "missing or not a string"),
        (
            {"all": [{"field": "p" * 80, "op": "=", "value": 1}]},
            "all[0].field",
            f"unknown field {'p' * 60!r}; allowed: {', '.join(ALL_FIELDS)}",
        ),
        (
            {"all": [{"field": "country", "op": ">", "value": "DE"}]},
            "all[0].op",
            "operator '>' is not allowed for country; use one of = != in not_in",
        ),
        (
            {"all": [{"field": "category_affinity", "key": "Home", "op": "between", "value": 1}]},
            "all[0].op",
            "operator 'between' is not allowed; use one of > >= < <= = !=",
        ),
        (
            {"all": [{"field": "purchased_in_category", "op": ">", "category": "Home"}]},
            "all[0].op",
            "operator '>' is not allowed for purchased_in_category; use 'within' or omit it",
        ),
        (_all({**BETWEEN, "value": 1}), "all[0].value", "'between' needs a list [low, high]"),
        (_all({**BETWEEN, "value": [3, 1]}), "all[0].value", "low 3 is greater than high 1"),
        (_all({**BETWEEN, "value": [1, "x"]}), "all[0].value[1]", "expected a finite number, got 'x'"),
        ({"all": [3]}, "all[0]", "expected an object, got int"),
        ({"all": []}, "all", "expected a non-empty list of conditions"),
        (
            {"all": [{"field": "country", "op": "=", "value": "x" * (MAX_STRING + 1)}]},
            "all[0].value",
            f"string longer than {MAX_STRING} characters",
        ),
        (_all({"field": "country", "op": "=", "value": "D\x00E"}), "all[0].value", "string contains a NUL character"),
        ({"all": [{"field": "country", "op": "=", "value": 3}]}, "all[0].value", "expected a string, got int"),
    ],
)
def test_error_path_and_message(tree, path, message):
    err = _error(tree)
    assert err.path == path
    assert str(err) == f"{path}: {message}"


def test_string_of_max_length_is_accepted():
    compile_rules({"field": "country", "op": "=", "value": "x" * MAX_STRING})


def test_field_catalogue_is_what_the_rule_form_reads():
    numeric_ops = [">", ">=", "<", "<=", "=", "!=", "between"]
    catalogue = field_catalogue()
    assert [(c["field"], c["kind"]) for c in catalogue] == (
        [(f, "number") for f in ALL_FIELDS[:14]]
        + [(f, "string") for f in ("price_band", "country", "age_band", "gender")]
        + [("category_affinity", "affinity"), ("brand_affinity", "affinity")]
        + [("purchased_in_category", "behaviour"), ("viewed_in_category", "behaviour")]
    )
    assert all(set(c) == {"field", "kind", "ops"} for c in catalogue)
    by_kind = {c["kind"]: c["ops"] for c in catalogue}
    assert by_kind == {
        "number": numeric_ops,
        "string": ["=", "!=", "in", "not_in"],
        "affinity": [">", ">=", "<", "<=", "=", "!="],
        "behaviour": ["within"],
    }
