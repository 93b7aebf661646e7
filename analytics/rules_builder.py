"""Compile an analyst's JSON condition tree into a Django ``Q`` over ``CustomerProfile``.

Grammar::

    node      := {"all": [node, ...]} | {"any": [node, ...]} | {"not": node} | condition
    condition := {"field": <name>, "op": <op>, "value": <value>}
               | {"field": "category_affinity" | "brand_affinity", "key": <str>, "op": <op>, "value": <number>}
               | {"field": "purchased_in_category" | "viewed_in_category", "category": <path>, "within_days": <int>}

Only whitelisted fields and operators compile; values are type-checked; there is no raw SQL and no
``eval``: every condition becomes an ORM lookup with the value passed as a query parameter, so an
"injection string" is just a string that matches nothing. Anything else raises :class:`RuleError`
naming the offending path, e.g. ``all[1].field: unknown field 'password'``.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from django.db.models import FloatField, Q, Value
from django.db.models.fields.json import KeyTransform
from django.db.models.functions import Cast, Coalesce
from django.db.models.lookups import Exact, GreaterThan, GreaterThanOrEqual, LessThan, LessThanOrEqual
from django.utils import timezone
from django.utils.translation import gettext_noop

from shop_recs.activity.models import Event

MAX_DEPTH = 6
MAX_CONDITIONS = 50
MAX_STRING = 200
MAX_LIST = 100

NUMERIC_OPS = (">", ">=", "<", "<=", "=", "!=", "between")
STRING_OPS = ("=", "!=", "in", "not_in")

#: field name -> (kind, ORM path, label)
NUMERIC_FIELDS: dict[str, str] = {
    "recency_days": "recency_days",
    "frequency": "frequency",
    "monetary": "monetary",
    "aov": "aov",
    "lifetime_value": "lifetime_value",
    "r_score": "r_score",
    "f_score": "f_score",
    "m_score": "m_score",
    "churn_risk": "churn_risk",
    "sessions": "sessions",
    "events": "events",
    "views_per_purchase": "views_per_purchase",
    "price_ratio": "price_ratio",
    "median_gap_days": "median_gap_days",
}
STRING_FIELDS: dict[str, str] = {
    "price_band": "price_band",
    "country": "customer__country",
    "age_band": "customer__age_band",
    "gender": "customer__gender",
}
AFFINITY_FIELDS = ("category_affinity", "brand_affinity")
BEHAVIOUR_FIELDS = {"purchased_in_category": "purchase", "viewed_in_category": "view"}
ALL_FIELDS = (*NUMERIC_FIELDS, *STRING_FIELDS, *AFFINITY_FIELDS, *BEHAVIOUR_FIELDS)

_NUM_LOOKUP = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte", "=": "exact"}
_EXPR_LOOKUP = {">": GreaterThan, ">=": GreaterThanOrEqual, "<": LessThan, "<=": LessThanOrEqual, "=": Exact}


class RuleError(ValueError):
    """A condition tree that does not compile; the message names the path and the problem."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path or "(root)"
        super().__init__(f"{self.path}: {message}")


def compile_rules(tree: Any) -> Q:
    """The ``Q`` for ``tree`` (see the module docstring); raises :class:`RuleError`."""
    counter = {"n": 0}
    if not isinstance(tree, dict) or not tree:
        raise RuleError("", "the conditions must be a non-empty JSON object")
    return _node(tree, "", 0, counter)


def _node(node: Any, path: str, depth: int, counter: dict[str, int]) -> Q:
    if depth > MAX_DEPTH:
        raise RuleError(path, f"nesting is deeper than {MAX_DEPTH} levels")
    if not isinstance(node, dict):
        raise RuleError(path, f"expected an object, got {type(node).__name__}")
    groups = [k for k in ("all", "any", "not") if k in node]
    if groups:
        if len(node) != 1:
            raise RuleError(path, f"a group has exactly one key ('all', 'any' or 'not'), got {sorted(node)}")
        key = groups[0]
        sub = f"{path}.{key}" if path else key
        if key == "not":
            return ~_node(node["not"], sub, depth + 1, counter)
        children = node[key]
        if not isinstance(children, list) or not children:
            raise RuleError(sub, "expected a non-empty list of conditions")
        qs = [_node(child, f"{sub}[{i}]", depth + 1, counter) for i, child in enumerate(children)]
        out = qs[0]
        for q in qs[1:]:
            out = (out & q) if key == "all" else (out | q)
        return out
    counter["n"] += 1
    if counter["n"] > MAX_CONDITIONS:
        raise RuleError(path, f"more than {MAX_CONDITIONS} conditions")
    return _condition(node, path)


def _number(value: Any, path: str) -> float:
    # bool is an int subclass in Python; "true > 3" is a mistake, not a number.
    try:
        # float(): an int beyond float's range (10**400) is an OverflowError, and one within it would
        # overflow SQLite's INTEGER in the query; both were 500s.
        number = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan
    except OverflowError:
        number = math.nan
    if not math.isfinite(number):
        raise RuleError(path, f"expected a finite number, got {value!r:.60}")
    return value if isinstance(value, float) or abs(value) < 2**53 else number


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise RuleError(path, f"expected a string, got {type(value).__name__}")
    if len(value) > MAX_STRING:
        raise RuleError(path, f"string longer than {MAX_STRING} characters")
    if "\x00" in value:
        raise RuleError(path, "string contains a NUL character")
    return value


def _keys(node: dict, allowed: set[str], path: str) -> None:
    extra = set(node) - allowed
    if extra:
        raise RuleError(path, f"unexpected key(s) {sorted(extra)}; allowed: {sorted(allowed)}")


def _condition(node: dict, path: str) -> Q:
    field = node.get("field")
    fpath = f"{path}.field" if path else "field"
    if not isinstance(field, str):
        raise RuleError(fpath, "missing or not a string")
    if field not in ALL_FIELDS:
        shown = field[:60]
        raise RuleError(fpath, f"unknown field {shown!r}; allowed: {', '.join(ALL_FIELDS)}")
    op = node.get("op")
    opath = f"{path}.op" if path else "op"
    vpath = f"{path}.value" if path else "value"

    if field in BEHAVIOUR_FIELDS:
        _keys(node, {"field", "category", "within_days", "op"}, path)
        if op not in (None, "within"):
            raise RuleError(opath, f"operator {str(op)[:20]!r} is not allowed for {field}; use 'within' or omit it")
        category = _string(node.get("category"), f"{path}.category")
        days = node.get("within_days", 30)
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 3650:
            raise RuleError(f"{path}.within_days", f"expected a whole number of days 1..3650, got {days!r}")
        return _behaviour(BEHAVIOUR_FIELDS[field], category, days)

    if field in AFFINITY_FIELDS:
        _keys(node, {"field", "key", "op", "value"}, path)
        key = _string(node.get("key"), f"{path}.key")
        if op not in _EXPR_LOOKUP and op != "!=":
            raise RuleError(opath, f"operator {str(op)[:20]!r} is not allowed; use one of > >= < <= = !=")
        value = float(_number(node.get("value"), vpath))
        # Absent keys mean "no measurable affinity": treat them as 0 so "< 0.1" includes them.
        expr = Coalesce(Cast(KeyTransform(key, field), FloatField()), Value(0.0))
        if op == "!=":
            return ~Q(Exact(expr, value))
        return Q(_EXPR_LOOKUP[op](expr, value))

    _keys(node, {"field", "op", "value"}, path)
    if "value" not in node:
        raise RuleError(vpath, "missing")
    value = node["value"]
    if field in NUMERIC_FIELDS:
        orm = NUMERIC_FIELDS[field]
        if op not in NUMERIC_OPS:
            raise RuleError(
                opath, f"operator {str(op)[:20]!r} is not allowed for {field}; use one of {' '.join(NUMERIC_OPS)}"
            )
        if op == "between":
            if not isinstance(value, list) or len(value) != 2:
                raise RuleError(vpath, "'between' needs a list [low, high]")
            low, high = (_number(v, f"{vpath}[{i}]") for i, v in enumerate(value))
            if low > high:
                raise RuleError(vpath, f"low {low} is greater than high {high}")
            return Q(**{f"{orm}__gte": low, f"{orm}__lte": high})
        number = _number(value, vpath)
        if op == "!=":
            return ~Q(**{orm: number}) | Q(**{f"{orm}__isnull": True})
        return Q(**{f"{orm}__{_NUM_LOOKUP[op]}": number})

    orm = STRING_FIELDS[field]
    if op not in STRING_OPS:
        raise RuleError(
            opath, f"operator {str(op)[:20]!r} is not allowed for {field}; use one of {' '.join(STRING_OPS)}"
        )
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value or len(value) > MAX_LIST:
            raise RuleError(vpath, f"'{op}' needs a non-empty list of at most {MAX_LIST} strings")
        values = [_string(v, f"{vpath}[{i}]") for i, v in enumerate(value)]
        q = Q(**{f"{orm}__in": values})
        return q if op == "in" else ~q
    text = _string(value, vpath)
    return Q(**{orm: text}) if op == "=" else ~Q(**{orm: text})


def _behaviour(event_type: str, category: str, days: int) -> Q:
    """Customers with an event of this type in the category (or its subtree) within the last ``days``."""
    since = timezone.now() - timedelta(days=days)
    events = Event.objects.filter(
        Q(product__category__path=category) | Q(product__category__path__startswith=f"{category} > "),
        event_type=event_type,
        timestamp__gte=since,
        customer__isnull=False,
    ).values("customer_id")
    return Q(customer_id__in=events)


def field_catalogue() -> list[dict[str, Any]]:
    """What the rule form offers: every field with its kind and operators."""
    out: list[dict[str, Any]] = [
        {"field": f, "kind": gettext_noop("number"), "ops": list(NUMERIC_OPS)} for f in NUMERIC_FIELDS
    ]
    out += [{"field": f, "kind": gettext_noop("string"), "ops": list(STRING_OPS)} for f in STRING_FIELDS]
    out += [
        {"field": f, "kind": gettext_noop("affinity"), "ops": [">", ">=", "<", "<=", "=", "!="]}
        for f in AFFINITY_FIELDS
    ]
    out += [{"field": f, "kind": gettext_noop("behaviour"), "ops": ["within"]} for f in BEHAVIOUR_FIELDS]
    return out


def iter_conditions(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every condition of a tree that compiled, with its path in the same notation as :class:`RuleError`
    (``all[1].any[0]``): the validator that knows the store's catalog checks each one by that path."""
    if not isinstance(node, dict):
        return []
    for key in ("all", "any", "not"):
        if key in node:
            sub = f"{path}.{key}" if path else key
            if key == "not":
                return iter_conditions(node["not"], sub)
            return [c for i, child in enumerate(node[key]) for c in iter_conditions(child, f"{sub}[{i}]")]
    return [(path, node)]
