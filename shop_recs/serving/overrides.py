"""Rule overrides of experiment variants: one validation, used when a variant is saved and again when
serving loads it.

An override replaces fields of :class:`shop_recs.serving.rules.Rules` for the shoppers of one variant
(``{"boost_weight": 2.0}``, ``{"pinned": [12, 7]}``). A wrong type there once made every
recommendation of the placement a 500, so the experiment pages refuse it with a message naming the
field, and serving re-checks what it loads: a variant whose overrides are invalid serves the
control's configuration and the fallback is logged.
"""

from __future__ import annotations

import math
from typing import Any

#: Rules field -> its kind: ``bool``, a ``(low, high)`` number range, ``"ids"`` (a set of pks) or
#: ``"ordered_ids"`` (pins, whose order matters).
FIELDS: dict[str, Any] = {
    "exclude_inactive": bool,
    "exclude_out_of_stock": bool,
    "exclude_purchased": bool,
    "repurchasable_categories": "ids",
    "blocked": "ids",
    "pinned": "ordered_ids",
    "boosted_products": "ids",
    "boosted_categories": "ids",
    "boost_weight": (0.0, 10.0),
    "diversity": (0.0, 1.0),
}

#: Rules field -> the ``StoreRules`` column a promotion writes it to.
STORE_RULES_COLUMNS: dict[str, str] = {
    "exclude_inactive": "exclude_inactive",
    "exclude_out_of_stock": "exclude_out_of_stock",
    "exclude_purchased": "exclude_purchased",
    "repurchasable_categories": "repurchasable_category_ids",
    "blocked": "blocked_product_ids",
    "pinned": "pinned_product_ids",
    "boosted_products": "boosted_product_ids",
    "boosted_categories": "boosted_category_ids",
    "boost_weight": "boost_weight",
    "diversity": "default_diversity",
}

MAX_IDS = 1000


class InvalidOverride(ValueError):  # noqa: N818 - reads as the state of the value
    """An override that names an unknown field or holds a value of the wrong type or range."""


def clean_overrides(raw: Any) -> dict[str, Any]:
    """The overrides as :meth:`Rules.with_overrides` takes them (frozensets, tuples, floats).

    Raises :class:`InvalidOverride` naming the field and what is wrong.
    """
    if raw in (None, ""):
        return {}
    if not isinstance(raw, dict):
        raise InvalidOverride("rule overrides must be an object of rule fields")
    cleaned: dict[str, Any] = {}
    for name, value in raw.items():
        kind = FIELDS.get(name)
        if kind is None:
            raise InvalidOverride(f"{name!r} is not a rule; known rules: {', '.join(FIELDS)}")
        cleaned[name] = _clean(name, kind, value)
    return cleaned


def _clean(name: str, kind: Any, value: Any) -> Any:
    if kind is bool:
        if not isinstance(value, bool):
            raise InvalidOverride(f"{name} must be true or false, got {value!r}")
        return value
    if isinstance(kind, tuple):
        low, high = kind
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InvalidOverride(f"{name} must be a number from {low:g} to {high:g}, got {value!r}")
        if not low <= value <= high:
            raise InvalidOverride(f"{name} must be from {low:g} to {high:g}, got {value!r}")
        return float(value)
    if not isinstance(value, list) or len(value) > MAX_IDS:
        raise InvalidOverride(f"{name} must be a list of at most {MAX_IDS} product or category ids, got {value!r}")
    if any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in value):
        raise InvalidOverride(f"{name} must hold positive whole ids only, got {value!r}")
    return tuple(dict.fromkeys(value)) if kind == "ordered_ids" else frozenset(value)


def store_rules_values(overrides: dict[str, Any]) -> dict[str, Any]:
    """Validated overrides as ``StoreRules`` column values (lists for the JSON columns)."""
    values = {}
    for name, value in clean_overrides(overrides).items():
        if isinstance(value, frozenset):
            value = sorted(value)
        elif isinstance(value, tuple):
            value = list(value)
        values[STORE_RULES_COLUMNS[name]] = value
    return values
