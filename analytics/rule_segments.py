"""Rule segments as merchants build them: field labels and operators for the visual builder, the checks
the compiler cannot make alone (value ranges, category and brand names of this store's catalog), and
saving, editing and duplicating with the change record.

``analytics.rules_builder`` stays the grammar (store-blind, so stored segments keep evaluating if a
category is renamed later); :func:`validate_rules` adds what only the store knows, and is what every
write path calls: the builder's live audience, the new/edit/duplicate form. An unknown category is an
error naming the condition ("Unknown category 'Sneakers' — did you mean 'Fashion > Sneakers'?"),
never a condition that silently matches nobody.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext, pgettext_lazy

from analytics.models import PriceBand, Segment
from analytics.rules_builder import (
    AFFINITY_FIELDS,
    BEHAVIOUR_FIELDS,
    NUMERIC_FIELDS,
    NUMERIC_OPS,
    STRING_FIELDS,
    STRING_OPS,
    RuleError,
    compile_rules,
    iter_conditions,
)
from analytics.segments import refresh_segment_memberships
from shop_recs.activity.models import Customer
from shop_recs.ads.models import Campaign, CampaignStatus
from shop_recs.catalog.models import Category, Product
from shop_recs.serving.audit import record_change
from shop_recs.serving.models import ChangeKind
from shop_recs.stores.models import Store

#: The most category paths and brands the page sends to the pickers; a larger catalog still validates
#: every name on the server, the picker then offers the first ones alphabetically.
MAX_PICKER_OPTIONS = 5_000
#: Distinct customer values (countries, age bands, genders) offered as suggestions.
MAX_VALUE_SUGGESTIONS = 200

_MONEY = (0.0, 1e12)
_DAYS = (0.0, 36_500.0)
_COUNT = (0.0, 1e9)

#: field -> (label, group, (low, high), step). Ranges are what the profile can hold: a condition outside
#: them matches everyone or no one, which is a typo, not a segment.
FIELDS: dict[str, tuple[Any, Any, tuple[float, float] | None, str]] = {
    "recency_days": (gettext_lazy("Days since last purchase"), gettext_lazy("Purchases"), _DAYS, "1"),
    "frequency": (gettext_lazy("Number of orders"), gettext_lazy("Purchases"), _COUNT, "1"),
    "monetary": (gettext_lazy("Total revenue"), gettext_lazy("Purchases"), _MONEY, "any"),
    "aov": (gettext_lazy("Average order value"), gettext_lazy("Purchases"), _MONEY, "any"),
    "lifetime_value": (gettext_lazy("Predicted lifetime value"), gettext_lazy("Purchases"), _MONEY, "any"),
    "median_gap_days": (gettext_lazy("Usual days between orders"), gettext_lazy("Purchases"), _DAYS, "1"),
    "r_score": (gettext_lazy("Recency score (1–5)"), gettext_lazy("Scores"), (1.0, 5.0), "1"),
    "f_score": (gettext_lazy("Frequency score (1–5)"), gettext_lazy("Scores"), (1.0, 5.0), "1"),
    "m_score": (gettext_lazy("Spend score (1–5)"), gettext_lazy("Scores"), (1.0, 5.0), "1"),
    "churn_risk": (gettext_lazy("Churn risk (0–1)"), gettext_lazy("Scores"), (0.0, 1.0), "0.01"),
    "sessions": (gettext_lazy("Visits"), gettext_lazy("Engagement"), _COUNT, "1"),
    "events": (gettext_lazy("Events"), gettext_lazy("Engagement"), _COUNT, "1"),
    "views_per_purchase": (gettext_lazy("Views per purchase"), gettext_lazy("Engagement"), (0.0, 1e9), "any"),
    "price_ratio": (
        gettext_lazy("Price ratio to category median"),
        gettext_lazy("Engagement"),
        (0.0, 1e6),
        "0.01",
    ),
    "price_band": (gettext_lazy("Price band"), gettext_lazy("Customer"), None, ""),
    "country": (gettext_lazy("Country"), gettext_lazy("Customer"), None, ""),
    "age_band": (gettext_lazy("Age band"), gettext_lazy("Customer"), None, ""),
    "gender": (gettext_lazy("Gender"), gettext_lazy("Customer"), None, ""),
    "category_affinity": (gettext_lazy("Interest in category (0–1)"), gettext_lazy("Interests"), (0.0, 1.0), "0.01"),
    "brand_affinity": (gettext_lazy("Interest in brand (0–1)"), gettext_lazy("Interests"), (0.0, 1.0), "0.01"),
    "purchased_in_category": (gettext_lazy("Bought in category"), gettext_lazy("Behaviour"), None, ""),
    "viewed_in_category": (gettext_lazy("Viewed in category"), gettext_lazy("Behaviour"), None, ""),
}

OPERATORS: dict[str, Any] = {
    ">": pgettext_lazy("rule operator", "more than"),
    ">=": pgettext_lazy("rule operator", "at least"),
    "<": pgettext_lazy("rule operator", "less than"),
    "<=": pgettext_lazy("rule operator", "at most"),
    "=": pgettext_lazy("rule operator", "is"),
    "!=": pgettext_lazy("rule operator", "is not"),
    "between": pgettext_lazy("rule operator", "between"),
    "in": pgettext_lazy("rule operator", "is one of"),
    "not_in": pgettext_lazy("rule operator", "is none of"),
    "within": pgettext_lazy("rule operator", "within the last"),
}
AFFINITY_OPS = (">", ">=", "<", "<=", "=", "!=")


def _kind(field: str) -> str:
    if field in NUMERIC_FIELDS:
        return "number"
    if field in STRING_FIELDS:
        return "choice" if field == "price_band" else "string"
    if field == "category_affinity":
        return "category_affinity"
    if field == "brand_affinity":
        return "brand_affinity"
    return "behaviour"


def _ops(field: str) -> tuple[str, ...]:
    kind = _kind(field)
    if kind == "number":
        return NUMERIC_OPS
    if kind in ("string", "choice"):
        return STRING_OPS
    if kind == "behaviour":
        return ("within",)
    return AFFINITY_OPS


def field_choices() -> list[dict[str, Any]]:
    """Every field the builder offers, in the order of the picker: label, group, kind, operators, range."""
    out = []
    for field, (label, group, bounds, step) in FIELDS.items():
        entry: dict[str, Any] = {
            "field": field,
            "label": str(label),
            "group": str(group),
            "kind": _kind(field),
            "ops": [{"op": op, "label": str(OPERATORS[op])} for op in _ops(field)],
        }
        if bounds is not None:
            entry.update(min=bounds[0], max=bounds[1], step=step)
        if field == "price_band":
            entry["choices"] = [{"value": v, "label": str(lbl)} for v, lbl in PriceBand.choices]
        out.append(entry)
    return out


def builder_config(store: Store) -> dict[str, Any]:
    """What the builder page needs (inside store_scope): fields, this store's categories and brands,
    the customer values seen, and the few sentences the script shows."""
    categories = list(Category.objects.order_by("path").values_list("path", flat=True)[:MAX_PICKER_OPTIONS])
    brands = list(
        Product.objects.exclude(brand="")
        .order_by("brand")
        .values_list("brand", flat=True)
        .distinct()[:MAX_PICKER_OPTIONS]
    )
    values = {
        field: list(
            Customer.objects.exclude(**{field: ""})
            .order_by(field)
            .values_list(field, flat=True)
            .distinct()[:MAX_VALUE_SUGGESTIONS]
        )
        for field in ("country", "age_band", "gender")
    }
    return {
        "fields": field_choices(),
        "categories": categories,
        "brands": brands,
        "values": values,
        "text": {
            "all": _("all of these"),
            "any": _("any of these"),
            "match": _("Customers matching"),
            "exclude": _("Exclude customers who match (NOT)"),
            "add": _("Add condition"),
            "add_group": _("Add group"),
            "remove": _("Remove"),
            "remove_group": _("Remove group"),
            "field": _("Field"),
            "operator": _("Operator"),
            "value": _("Value"),
            "and": pgettext("between low and high", "and"),
            "days": pgettext("segment builder", "days"),
            "category": _("Category"),
            "brand": _("Brand"),
            "pick_category": _("Type to pick a category"),
            "pick_brand": _("Type to pick a brand"),
            "subtree": _("includes its subcategories"),
            "exact": _("this exact category"),
            "list_hint": _("separate values with commas"),
            "incomplete": _("Fill in every condition to see the audience."),
            "needs_value": _("Enter a value."),
            "bad_json": _("The JSON is not valid: %(err)s"),
            "not_builder": _(
                "This JSON is valid but the builder cannot show it; edit it here or fix it to use the builder."
            ),
            "empty": _("Add at least one condition."),
            "stale": _("Conditions changed: estimate again to see the audience."),
        },
    }


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _closest(name: str, known: list[str]) -> str | None:
    """The most likely intended name: a path ending with ``name`` (case-insensitive), else the closest
    by difflib's ratio over full paths and their last part (rapidfuzz is not a dependency)."""
    lowered = name.strip().lower()
    for candidate in known:
        if candidate.lower() == lowered or candidate.lower().rsplit(" > ", 1)[-1] == lowered:
            return candidate
    by_last = {c.rsplit(" > ", 1)[-1].lower(): c for c in known}
    hits = difflib.get_close_matches(lowered, list(by_last), n=1, cutoff=0.6)
    if hits:
        return by_last[hits[0]]
    full = {c.lower(): c for c in known}
    hits = difflib.get_close_matches(lowered, list(full), n=1, cutoff=0.6)
    return full[hits[0]] if hits else None


def _unknown(kind: str, name: str, known: list[str]) -> str:
    guess = _closest(name, known)
    shown = name[:80]
    if kind == "category":
        if guess:
            return _("Unknown category '%(name)s' — did you mean '%(guess)s'?") % {"name": shown, "guess": guess}
        return _("Unknown category '%(name)s': no category of this store has that path.") % {"name": shown}
    if guess:
        return _("Unknown brand '%(name)s' — did you mean '%(guess)s'?") % {"name": shown, "guess": guess}
    return _("Unknown brand '%(name)s': no product of this store has that brand.") % {"name": shown}


def _number_text(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:g}"


def _check_range(field: str, node: dict[str, Any], path: str) -> None:
    bounds = FIELDS[field][2]
    if bounds is None or "value" not in node:
        return
    low, high = bounds
    values = node["value"] if isinstance(node["value"], list) else [node["value"]]
    for i, value in enumerate(values):
        vpath = _join(path, "value") + (f"[{i}]" if isinstance(node["value"], list) else "")
        if not low <= value <= high:
            raise RuleError(
                vpath,
                _("%(label)s must be between %(low)s and %(high)s, got %(value)s.")
                % {
                    "label": FIELDS[field][0],
                    "low": _number_text(low),
                    "high": _number_text(high),
                    "value": _number_text(value),
                },
            )


def _check_price_band(node: dict[str, Any], path: str) -> None:
    """A price band is one of three codes: "cheap" would be a condition that matches nobody."""
    value = node["value"]
    for i, band in enumerate(value if isinstance(value, list) else [value]):
        if band not in PriceBand.values:
            vpath = _join(path, "value") + (f"[{i}]" if isinstance(value, list) else "")
            raise RuleError(
                vpath,
                _("Unknown price band '%(value)s'; use one of: %(choices)s.")
                % {"value": band[:40], "choices": ", ".join(PriceBand.values)},
            )


def validate_rules(tree: Any) -> Q:
    """The ``Q`` of ``tree`` once it compiles, its numbers are in range and every category and brand it
    names exists in this store's catalog (inside store_scope); raises :class:`RuleError` naming the path."""
    q = compile_rules(tree)
    conditions = iter_conditions(tree)
    wanted_categories: dict[str, str] = {}
    wanted_brands: dict[str, str] = {}
    for path, node in conditions:
        field = node["field"]
        _check_range(field, node, path)
        if field == "price_band":
            _check_price_band(node, path)
        if field in BEHAVIOUR_FIELDS:
            wanted_categories.setdefault(node["category"], _join(path, "category"))
        elif field == "category_affinity":
            wanted_categories.setdefault(node["key"], _join(path, "key"))
        elif field == "brand_affinity":
            wanted_brands.setdefault(node["key"], _join(path, "key"))
    if wanted_categories:
        found = set(Category.objects.filter(path__in=list(wanted_categories)).values_list("path", flat=True))
        for name, path in wanted_categories.items():
            if name not in found:
                raise RuleError(path, _unknown("category", name, list(Category.objects.values_list("path", flat=True))))
    if wanted_brands:
        found = set(Product.objects.filter(brand__in=list(wanted_brands)).values_list("brand", flat=True).distinct())
        for name, path in wanted_brands.items():
            if name not in found:
                known = list(Product.objects.exclude(brand="").values_list("brand", flat=True).distinct())
                raise RuleError(path, _unknown("brand", name, known))
    return q


def _describe(node: dict[str, Any]) -> str:
    for key, word in (
        ("all", pgettext("segment conditions", "all of")),
        ("any", pgettext("segment conditions", "any of")),
    ):
        if key in node:
            return f"{word} (" + "; ".join(_describe(child) for child in node[key]) + ")"
    if "not" in node:
        return pgettext("segment conditions", "not") + " (" + _describe(node["not"]) + ")"
    field = node.get("field", "")
    label = str(FIELDS[field][0]) if field in FIELDS else field
    if field in BEHAVIOUR_FIELDS:
        return _("%(label)s %(cat)s within the last %(days)s days") % {
            "label": label,
            "cat": node.get("category"),
            "days": node.get("within_days", 30),
        }
    op = str(OPERATORS.get(node.get("op"), node.get("op")))
    value = node.get("value")
    shown = (
        " – ".join(str(v) for v in value)
        if node.get("op") == "between" and isinstance(value, list)
        else ", ".join(str(v) for v in value)
        if isinstance(value, list)
        else str(value)
    )
    if field in AFFINITY_FIELDS:
        return f"{label} {node.get('key')} {op} {shown}"
    return f"{label} {op} {shown}"


def describe_rules(tree: Any) -> str:
    """The conditions in words for the segment page ("all of (Total revenue more than 500; …)")."""
    if not isinstance(tree, dict) or not tree:
        return ""
    try:
        return _describe(tree)
    except (AttributeError, TypeError):  # a stored tree that no longer compiles: its page shows the error
        return ""


@dataclass
class SegmentInput:
    name: str
    description: str
    rules: dict[str, Any]


def running_campaigns(segment: Segment) -> list[Campaign]:
    """Active, not yet ended campaigns aimed at the segment: editing its conditions changes who sees them."""
    if segment.pk is None:
        return []
    return list(
        segment.campaigns.filter(status=CampaignStatus.ACTIVE, ends_at__gt=timezone.now()).order_by("name", "pk")
    )


def create_rule_segment(store: Store, user: Any, data: SegmentInput) -> Segment:
    """A new rule segment (a duplicate is one too), its members computed at once."""
    seg = Segment.objects.create(
        store=store,
        kind=Segment.Kind.RULE,
        name=data.name,
        description=data.description,
        rules=data.rules,
        created_by=user if getattr(user, "is_authenticated", False) else None,
    )
    refresh_segment_memberships(store)
    return seg


def update_rule_segment(store: Store, user: Any, segment: Segment, data: SegmentInput) -> dict[str, list[Any]]:
    """Save an edit, refresh memberships (the ads targeting reads them) and record what changed.

    Returns ``{field: [old, new]}``; nothing is recorded when nothing changed.
    """
    before = {"name": segment.name, "description": segment.description, "rules": segment.rules}
    after = {"name": data.name, "description": data.description, "rules": data.rules}
    changes = {k: [before[k], v] for k, v in after.items() if before[k] != v}
    if not changes:
        return {}
    campaigns = running_campaigns(segment)
    segment.name, segment.description, segment.rules = data.name, data.description, data.rules
    segment.save(update_fields=["name", "description", "rules", "updated_at"])
    refresh_segment_memberships(store)
    if campaigns:
        who = ", ".join(c.name for c in campaigns)
        summary = f"segment #{segment.pk} {segment.name}: {', '.join(sorted(changes))} edited; targeted by {who}"
    else:
        summary = f"segment #{segment.pk} {segment.name}: {', '.join(sorted(changes))} edited; no running campaign"
    # Segments reach shoppers through the campaigns aimed at them; the summary names those campaigns.
    record_change(
        store,
        user,
        ChangeKind.SEGMENT,
        summary,
        obj=segment,
        details={**changes, "segment": segment.pk, "running_campaigns": [c.pk for c in campaigns]},
    )
    return changes
