"""The rule compiler's remaining limits, each pinned at its boundary (the real survivors of the
complete mutation run of ``analytics/rules_builder.py`` listed in docs/benchmarks.md): the 2**53
integer-precision guard, the default ``within_days``, ``MAX_LIST`` and the depth limit under ``not``.
"""

from __future__ import annotations

import pytest

import analytics.rules_builder as rb
from analytics.rules_builder import MAX_DEPTH, MAX_LIST, RuleError, compile_rules


def _lookup(q) -> tuple[str, object]:
    (child,) = q.children
    return child


def test_integers_below_two_to_the_53_stay_exact_integers():
    key, value = _lookup(compile_rules({"field": "frequency", "op": ">=", "value": 2**53 - 1}))
    assert key == "frequency__gte" and value == 2**53 - 1 and type(value) is int


@pytest.mark.parametrize("value", [2**53, 2**53 + 1, -(2**53) - 7])
def test_integers_from_two_to_the_53_become_floats_so_sqlite_cannot_overflow(value):
    _, compiled = _lookup(compile_rules({"field": "monetary", "op": "<", "value": value}))
    assert type(compiled) is float and compiled == float(value)


def test_a_behaviour_condition_without_within_days_looks_back_30_days(monkeypatch):
    seen: list[int] = []
    monkeypatch.setattr(rb, "_behaviour", lambda event_type, category, days: seen.append(days) or rb.Q())
    compile_rules({"field": "purchased_in_category", "category": "Home"})
    compile_rules({"field": "viewed_in_category", "category": "Home", "within_days": 7})
    assert seen == [30, 7]


def test_a_list_of_exactly_max_list_values_compiles_and_one_more_is_refused():
    values = [f"C{i}" for i in range(MAX_LIST)]
    key, compiled = _lookup(compile_rules({"field": "country", "op": "in", "value": values}))
    assert key == "customer__country__in" and compiled == values
    for op in ("in", "not_in"):
        with pytest.raises(RuleError) as exc:
            compile_rules({"field": "country", "op": op, "value": [*values, "XX"]})
        assert str(exc.value) == f"value: '{op}' needs a non-empty list of at most {MAX_LIST} strings"


def _nots(levels: int) -> dict:
    tree: dict = {"field": "frequency", "op": ">=", "value": 1}
    for _ in range(levels):
        tree = {"not": tree}
    return tree


def test_not_counts_towards_the_nesting_limit():
    compile_rules(_nots(MAX_DEPTH))
    with pytest.raises(RuleError) as exc:
        compile_rules(_nots(MAX_DEPTH + 1))
    assert exc.value.path == "not" + ".not" * MAX_DEPTH
    assert str(exc.value).endswith(f"nesting is deeper than {MAX_DEPTH} levels")


def test_an_unknown_operator_is_echoed_cut_to_20_characters():
    op = "x" * 30
    with pytest.raises(RuleError) as exc:
        compile_rules({"field": "frequency", "op": op, "value": 1})
    assert f"operator {'x' * 20!r} is not allowed for frequency" in str(exc.value)
    assert "x" * 21 not in str(exc.value)
