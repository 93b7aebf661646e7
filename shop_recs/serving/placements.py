"""Placements (Recombee's scenarios): where a store shows recommendations, each with its own rules.

Selectors read a store's placements; services create, edit and delete them and record every change
to what shoppers see (``serving.audit``). Call inside the store's scope (the dashboard's
``store_view`` sets it).

The serving hot path reads placements through ``serving.rules.placement_rules`` (every placement's
rules and algorithm of a store in one cached entry): an edit here saves a ``Placement`` or its
``StoreRules`` row, whose ``save()``/``delete()`` drop this process's entry; other processes pick the
change up within ``SERVING_RULES_TTL`` seconds, as for every rules change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import Q
from django.forms.models import model_to_dict
from django.utils.translation import gettext as _

from shop_recs.serving import services as serving
from shop_recs.serving.audit import field_changes, record_change
from shop_recs.serving.experiments import algorithm_model, log_variant_list
from shop_recs.serving.models import (
    DEFAULT_PLACEMENT_KEY,
    ChangeKind,
    Experiment,
    ExperimentStatus,
    Placement,
    StoreRules,
    default_placement,
)
from shop_recs.serving.rules import placement_rules

if TYPE_CHECKING:
    from shop_recs.stores.models import Store

#: The ``StoreRules`` columns a new placement copies from the default placement.
RULE_COLUMNS = (
    "exclude_inactive",
    "exclude_out_of_stock",
    "exclude_purchased",
    "repurchasable_category_ids",
    "blocked_product_ids",
    "pinned_product_ids",
    "boosted_product_ids",
    "boosted_category_ids",
    "boost_weight",
    "default_diversity",
)


class PlacementError(ValueError):
    """A placement change that is refused (the message says why, for the merchant)."""


# --- selectors ---------------------------------------------------------------------------------


def store_placements(store: Store) -> list[Placement]:
    """The store's placements, the default first, then by name."""
    return list(Placement.objects.filter(store=store).order_by("-is_default", "name", "pk"))


def placement_choices(store: Store) -> list[tuple[str, str]]:
    """(key, display name) of the store's placements, the default placement first.

    A store always has a default placement (made with the store); should its row be missing, the
    default key is still offered first, since serving falls back to it for any key.
    """
    rows = store_placements(store)
    choices = [(p.key, p.name) for p in rows]
    if not any(p.is_default for p in rows):
        choices.insert(0, (DEFAULT_PLACEMENT_KEY, _("Default")))
    return choices


def placement_by_key(store: Store, key: str) -> Placement:
    """The placement with this key, or the store's default one (as serving falls back)."""
    found = Placement.objects.filter(store=store, key=key).first() if key else None
    return found or default_placement(store.pk)


def rules_row(placement: Placement) -> StoreRules:
    """The placement's rules row, or an unsaved one with the defaults.

    For the default placement a row saved without a placement (before placements, by a bulk write)
    counts too: serving applies it store-wide."""
    lookup = Q(placement=placement)
    if placement.is_default:
        lookup |= Q(placement__isnull=True)
    row = StoreRules.objects.filter(lookup, store_id=placement.store_id).order_by("placement_id").first()
    return row or StoreRules(store_id=placement.store_id, placement=placement)


def rules_row_for(store: Store, key: str) -> StoreRules:
    """The rules row that serves requests naming placement ``key`` (the default's when unknown)."""
    return rules_row(placement_by_key(store, key))


@dataclass
class PlacementRow:
    """One line of the Placements page."""

    placement: Placement
    rules: StoreRules
    experiment: Experiment | None

    @property
    def n_pinned(self) -> int:
        return len(self.rules.pinned_product_ids or [])

    @property
    def n_blocked(self) -> int:
        return len(self.rules.blocked_product_ids or [])

    @property
    def n_boosted(self) -> int:
        return len(self.rules.boosted_product_ids or []) + len(self.rules.boosted_category_ids or [])


def placement_rows(store: Store) -> list[PlacementRow]:
    """Every placement with its rules and its running experiment (three queries)."""
    placements = store_placements(store)
    rows = {r.placement_id: r for r in StoreRules.objects.filter(store=store, placement__in=placements)}
    running = {
        e.placement: e for e in Experiment.objects.filter(store=store, status=ExperimentStatus.RUNNING).order_by("pk")
    }
    return [
        PlacementRow(p, rows.get(p.pk) or StoreRules(store=store, placement=p), running.get(p.key)) for p in placements
    ]


def running_experiment(placement: Placement) -> Experiment | None:
    """The experiment running on this placement, if any (at most one: a database constraint)."""
    return Experiment.objects.filter(
        store_id=placement.store_id, placement=placement.key, status=ExperimentStatus.RUNNING
    ).first()


# --- services ----------------------------------------------------------------------------------


def _values(placement: Placement) -> dict[str, Any]:
    return {"key": placement.key, "name": placement.name, "algorithm": placement.algorithm}


def rule_values(row: StoreRules) -> dict[str, Any]:
    """The row's rule columns (for the change record's before/after)."""
    return model_to_dict(row, fields=list(RULE_COLUMNS)) if row.pk else {}


def create_placement(store: Store, user: Any, *, key: str, name: str, algorithm: str = "") -> Placement:
    """A new placement whose rules start as a copy of the default placement's.

    Until now requests naming ``key`` were served the default placement's rules, so copying them
    means creating the placement changes nothing shoppers see until its rules are edited."""
    if Placement.objects.filter(store=store, key=key).exists():
        raise PlacementError(_("This store already has a placement with the key “%(key)s”.") % {"key": key})
    with transaction.atomic():
        placement = Placement.objects.create(store=store, key=key, name=name, algorithm=algorithm)
        source = rules_row(default_placement(store.pk))
        StoreRules.objects.create(store=store, placement=placement, **{c: getattr(source, c) for c in RULE_COLUMNS})
        record_change(
            store,
            user,
            ChangeKind.PLACEMENT,
            f"placement {key} created (rules copied from the default placement)",
            obj=placement,
            details=_values(placement),
        )
    return placement


def save_placement(placement: Placement, user: Any, *, name: str, algorithm: str, rules: StoreRules) -> list[str]:
    """Save the placement's name, algorithm and rules (``rules``: its row with the new values, unsaved)
    and record what changed. Returns the names of the changed fields."""
    store = placement.store
    before = _values(Placement.objects.get(pk=placement.pk))
    before_rules = rule_values(rules_row(placement))
    with transaction.atomic():
        placement.name, placement.algorithm = name, algorithm
        placement.save()
        rules.placement = placement
        rules.save()  # StoreRules.save() drops this process's cached rules (rules.invalidate_rules)
        changes = field_changes(before, _values(placement))
        changes.update(field_changes(before_rules, rule_values(rules)))
        summary = ", ".join(sorted(changes)) or "saved without changes"
        # The default placement's rules are what every other request falls back to: "rules" as before.
        what = "rules" if placement.is_default else f"rules of placement {placement.key}"
        record_change(store, user, ChangeKind.RULES, f"{what}: {summary}", obj=rules, details=changes)
    return sorted(changes)


def delete_placement(placement: Placement, user: Any) -> None:
    """Delete a placement and its rules: its requests get the default placement's rules from now on.

    The default placement cannot be deleted (every unknown key falls back to it)."""
    if placement.is_default:
        raise PlacementError(_("The default placement cannot be deleted: every other request falls back to it."))
    store = placement.store
    details = {**_values(placement), "rules": rule_values(rules_row(placement))}
    key = placement.key
    with transaction.atomic():
        placement.delete()  # its rules row goes with it (CASCADE); Placement.delete() drops the cache
        record_change(
            store,
            user,
            ChangeKind.PLACEMENT,
            f"placement {key} deleted (its lists now use the default placement's rules)",
            details=details,
        )


# --- serving -----------------------------------------------------------------------------------


def serve_customer_placement(
    store: Store,
    customer: Any,
    *,
    n: int,
    offset: int,
    placement: str,
    filters: dict[str, Any],
) -> dict[str, Any]:
    """Customer recommendations of a placement with no running experiment.

    The placement's rules apply through ``placement`` (``rules.load_rules``). A placement that chose
    an algorithm of the active run is served that algorithm's model, and its list is logged with
    that model's version; otherwise this is exactly ``recommend_for_customer(...).as_dict()``."""
    algorithm = placement_rules(store).algorithm_for(placement)
    model, version = algorithm_model(store, algorithm) if algorithm else (None, None)
    if model is None:
        return serving.recommend_for_customer(
            store, customer, n=n, offset=offset, placement=placement, filters=filters
        ).as_dict()
    result = serving.recommend_for_customer(
        store,
        customer,
        n=n,
        offset=offset,
        placement=placement,
        filters=filters,
        model=model,
        algorithm=version.algorithm,
        log=False,
    )
    # A customer without history gets trending whatever the placement's model: it did not serve it.
    version_id = version.pk if result.algorithm != "trending" else result.model_version
    list_id = log_variant_list(
        store.pk,
        [c.product_id for c in result.candidates],
        placement=placement,
        customer_id=getattr(customer, "pk", None),
        model_version_id=version_id,
        algorithm=result.algorithm,
        variant="",
    )
    payload = result.as_dict()
    payload.update(list_id=list_id, model_version=version_id)
    return payload
