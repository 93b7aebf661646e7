"""Experiments: lifecycle (start, stop, promote) and attribution of activity to served lists."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from analytics.experiments import selectors
from analytics.experiments.models import Attribution, AttributionSettings
from shop_recs.activity.models import Event
from shop_recs.platform.jobs import json_safe
from shop_recs.serving.experiments import VariantSpec, resolve_version
from shop_recs.serving.models import Experiment, ExperimentStatus, RecommendationList, Variant, VariantKind
from shop_recs.serving.overrides import InvalidOverride, clean_overrides, store_rules_values
from shop_recs.serving.placements import rules_row_for
from shop_recs.stores.models import Store
from shop_recs.stores.scoping import store_scope
from shop_recs.training.activation import activate_version, may_change_live_model
from shop_recs.training.models import ActivationSource, ModelVersion, StoreTrainingConfig

ATTRIBUTED_TYPES = ("click", "add_to_cart", "purchase")
#: An event may carry a timestamp a little before the list's (client clock skew).
CLOCK_SKEW = timedelta(minutes=5)


def settle_delay() -> timedelta:
    """``ATTRIBUTION_SETTLE_SECONDS`` (default 10 when list rows are buffered, else 0): events received
    more recently wait for the next run.

    Web workers write served-list rows in batches (``shop_recs.platform.logbuffer``, up to
    ``SERVING_LOG_FLUSH_MS`` late); a click that arrives right after its list was served must not be
    judged before that list's row is in the table, or it would be passed over for good.
    """
    return timedelta(seconds=settings.ATTRIBUTION_SETTLE_SECONDS)


class ExperimentError(Exception):
    """An experiment action that is not allowed in the experiment's state."""


# --- lifecycle ------------------------------------------------------------------------------------


def validate_variants(variants: list[Variant] | list[dict[str, Any]]) -> None:
    """The split sums to 100 over at least two variants; every rule override is a valid rule value
    (the same validation serving applies when it loads the variant: serving/overrides.py)."""
    shares = [v["traffic"] if isinstance(v, dict) else v.traffic for v in variants]
    if len(shares) < 2:
        raise ExperimentError("An experiment needs at least two variants.")
    if sum(shares) != 100:
        raise ExperimentError(f"The traffic split must sum to 100 (it sums to {sum(shares)}).")
    for v in variants:
        name, overrides = (
            (v.get("name"), v.get("rule_overrides")) if isinstance(v, dict) else (v.name, v.rule_overrides)
        )
        try:
            clean_overrides(overrides)
        except InvalidOverride as exc:
            raise ExperimentError(f"Variant {name}: {exc}") from None


def create_experiment(
    store: Store, *, name: str, placement: str, variants: list[dict[str, Any]], user: Any = None, description: str = ""
) -> Experiment:
    """A draft experiment with its variants (``name``, ``kind``, ``traffic`` and the kind's field).

    A model version must be one of the store's (the builder only offers those; this refuses a
    forged id too, since serving would otherwise look it up in another store's scope and fall back).
    """
    validate_variants(variants)
    with store_scope(store):
        _check_versions(variants)
    with store_scope(store), transaction.atomic():
        exp = Experiment.objects.create(
            store=store, name=name, placement=placement, description=description, created_by=user
        )
        for i, v in enumerate(variants):
            Variant.objects.create(
                store=store,
                experiment=exp,
                position=i,
                name=v["name"],
                kind=v["kind"],
                model_version_id=v.get("model_version_id") or getattr(v.get("model_version"), "pk", None),
                algorithm=v.get("algorithm", "") or "",
                rule_overrides=v.get("rule_overrides") or {},
                traffic=v["traffic"],
            )
    return exp


def _check_versions(variants: list[dict[str, Any]]) -> None:
    """Each model-version variant names a usable version of the store in scope."""
    wanted = {
        v["name"]: v.get("model_version_id") or getattr(v.get("model_version"), "pk", None)
        for v in variants
        if v.get("kind") == VariantKind.MODEL_VERSION
    }
    found = set(
        ModelVersion.objects.filter(pk__in=[pk for pk in wanted.values() if pk], corrupt_at__isnull=True).values_list(
            "pk", flat=True
        )
    )
    for name, pk in wanted.items():
        if pk is None:
            raise ExperimentError(f"Variant {name}: choose the model version it serves.")
        if pk not in found:
            raise ExperimentError(f"Variant {name}: model version {pk} is not a usable version of this store.")


def start_experiment(exp: Experiment) -> Experiment:
    if exp.status != ExperimentStatus.DRAFT:
        raise ExperimentError("Only a draft experiment can be started.")
    validate_variants(list(exp.variants.all()))
    if Experiment.objects.filter(placement=exp.placement, status=ExperimentStatus.RUNNING).exists():
        raise ExperimentError(f"Another experiment is already running on placement {exp.placement!r}.")
    exp.status, exp.started_at = ExperimentStatus.RUNNING, timezone.now()
    exp.save(update_fields=["status", "started_at"])
    return exp


def stop_experiment(exp: Experiment) -> Experiment:
    if exp.status != ExperimentStatus.RUNNING:
        raise ExperimentError("Only a running experiment can be stopped.")
    exp.status, exp.stopped_at = ExperimentStatus.STOPPED, timezone.now()
    exp.save(update_fields=["status", "stopped_at"])
    return exp


def promote_variant(exp: Experiment, variant: Variant, user: Any = None, *, override: bool = False) -> str:
    """Make the variant what the store serves outside the experiment; stops a running experiment.

    Needs a merchant, a started experiment, and (unless ``override``, "promote anyway", which is
    recorded) enough impressions and a significant result in the variant's favour
    (:func:`selectors.promotion_check`). A model version is activated through the activation service
    with the figures as evidence; an algorithm also becomes the store's training configuration; a
    rule override is written to the rules.
    """
    if variant.experiment_id != exp.pk:
        raise ExperimentError("That variant belongs to another experiment.")
    store = exp.store
    if not may_change_live_model(user, store):
        raise ExperimentError("Only a merchant of this store can promote a variant.")
    check = selectors.promotion_check(exp, variant)
    if check["blockers"]:
        raise ExperimentError(" ".join(str(b) for b in check["blockers"]))
    if check["warnings"] and not override:
        raise ExperimentError("Not promoted: " + " ".join(str(w) for w in check["warnings"]))
    evidence = {**json_safe(check["figures"]), "warnings": [str(w) for w in check["warnings"]], "override": override}
    with transaction.atomic():
        outcome = _apply_variant(exp, variant, user, evidence)
        if exp.status == ExperimentStatus.RUNNING:
            exp.status, exp.stopped_at = ExperimentStatus.STOPPED, timezone.now()
        exp.promoted_variant, exp.promoted_at = variant, timezone.now()
        exp.promoted_by = user if getattr(user, "is_authenticated", False) else None
        exp.promotion_evidence = evidence
        exp.save()
    return outcome


def _apply_variant(exp: Experiment, variant: Variant, user: Any, evidence: dict[str, Any]) -> str:
    store = exp.store
    if variant.kind == VariantKind.RULES:
        # The rules that served the experiment's placement (its own, or the default placement's).
        rules = rules_row_for(store, exp.placement)
        try:
            values = store_rules_values(variant.rule_overrides)
        except InvalidOverride as exc:
            raise ExperimentError(f"Variant {variant.name}: {exc}") from None
        for column, value in values.items():
            setattr(rules, column, value)
        rules.save()
        return "rules updated"
    active = ModelVersion.objects.filter(is_active=True).first()
    version = resolve_version(store.pk, _spec(variant), active) or active
    if version is None:
        raise ExperimentError("The variant has no usable model version.")
    if not version.is_active:
        activate_version(
            version,
            user=user,
            reason=f"promoted from experiment #{exp.pk}, variant {variant.name}"
            + (" (promoted anyway)" if evidence.get("override") else ""),
            source=ActivationSource.PROMOTION,
            details=evidence,
        )
    outcome = f"model version {version.pk} ({version.algorithm}) active"
    if variant.kind == VariantKind.ALGORITHM:
        config, _ = StoreTrainingConfig.objects.get_or_create(store=store)
        config.algorithms = [variant.algorithm]
        config.updated_by = user
        config.save()
        outcome += "; training configuration updated"
    return outcome


def _spec(variant: Variant) -> Any:
    return VariantSpec(
        variant.pk,
        variant.name,
        variant.kind,
        variant.traffic,
        variant.model_version_id,
        variant.algorithm,
        dict(variant.rule_overrides or {}),
        variant.tag,
    )


# --- attribution ----------------------------------------------------------------------------------


def attribution_settings(store: Store) -> AttributionSettings:
    with store_scope(store):
        row, _ = AttributionSettings.objects.get_or_create(store=store)
    return row


def _parse_list_id(context: Any) -> uuid.UUID | None:
    if not isinstance(context, dict) or not context.get("list_id"):
        return None
    try:
        return uuid.UUID(str(context["list_id"]))
    except (ValueError, TypeError, AttributeError):
        return None


def attribute_events(store: Store, *, batch_size: int = 20_000) -> int:
    """Attribute the store's new clicks, cart adds and purchases (event id > the watermark).

    An event is credited to the list it names in ``context.list_id`` (same store, same customer when
    the list has one, inside the window), else to the latest list shown to the same customer that
    contained the product within the window before the event. Windows: clicks and carts
    ``click_window_hours``, purchases ``purchase_window_days``. Returns the rows written.
    """
    cfg = attribution_settings(store)
    written = 0
    with store_scope(store):
        click_window = timedelta(hours=cfg.click_window_hours)
        purchase_window = timedelta(days=cfg.purchase_window_days)
        while True:
            events, unsettled = _settled_events(cfg.last_event_id, batch_size)
            if not events:
                break
            explicit, named, by_customer = _candidate_lists(events, max(click_window, purchase_window))
            rows = []
            for e in events:
                window = purchase_window if e["event_type"] == "purchase" else click_window
                named_list = named.get(explicit[e["pk"]]) if explicit[e["pk"]] else None
                chosen, via = _choose_list(e, window, named_list, by_customer)
                if chosen is not None:
                    rows.append(_attribution(store, e, chosen, via))
            with transaction.atomic():
                Attribution.objects.bulk_create(rows, ignore_conflicts=True)
                cfg.last_event_id = events[-1]["pk"]
                AttributionSettings.objects.filter(pk=cfg.pk).update(last_event_id=cfg.last_event_id)
            written += len(rows)
            if unsettled or len(events) < batch_size:
                break
    return written


_LIST_FIELDS = (
    "list_id",
    "customer_id",
    "created_at",
    "product_ids",
    "placement",
    "model_version_id",
    "algorithm",
    "variant",
)


def _settled_events(last_event_id: int, batch_size: int) -> tuple[list[dict[str, Any]], bool]:
    """The next events after ``last_event_id`` to attribute, and whether an unsettled one was left out."""
    events = list(
        Event.objects.filter(pk__gt=last_event_id, event_type__in=ATTRIBUTED_TYPES, product__isnull=False)
        .order_by("pk")
        .values(
            "pk",
            "event_type",
            "customer_id",
            "product_id",
            "timestamp",
            "context",
            "value",
            "quantity",
            "received_at",
        )[:batch_size]
    )
    # Stop at the first event received too recently (in id order, so the watermark never
    # passes an event that has not been judged).
    settled_before = timezone.now() - settle_delay()
    settled = next((i for i, e in enumerate(events) if e["received_at"] > settled_before), len(events))
    return events[:settled], settled < len(events)


def _candidate_lists(
    events: list[dict[str, Any]], longest_window: timedelta
) -> tuple[dict[int, str | None], dict[str, dict[str, Any]], dict[int, list[dict[str, Any]]]]:
    """(list id named by each event, those lists by id, each customer's lists newest first)."""
    explicit = {e["pk"]: _parse_list_id(e["context"]) for e in events}
    named = {
        row["list_id"]: row
        for row in RecommendationList.objects.filter(list_id__in={v for v in explicit.values() if v}).values(
            *_LIST_FIELDS
        )
    }
    # Candidates for window attribution: the same customers' lists since the earliest window start.
    customers = {e["customer_id"] for e in events if e["customer_id"] is not None}
    by_customer: dict[int, list[dict[str, Any]]] = defaultdict(list)
    if customers:
        start = min(e["timestamp"] for e in events) - longest_window
        end = max(e["timestamp"] for e in events) + CLOCK_SKEW
        for row in (
            RecommendationList.objects.filter(created_at__gte=start, created_at__lte=end, customer_id__in=customers)
            .order_by("-created_at")
            .values(*_LIST_FIELDS)
        ):
            by_customer[row["customer_id"]].append(row)
    return explicit, named, by_customer


def _choose_list(
    e: dict[str, Any],
    window: timedelta,
    named: dict[str, Any] | None,
    by_customer: dict[int, list[dict[str, Any]]],
) -> tuple[dict[str, Any] | None, str]:
    """The list ``e`` is credited to and how (``list_id`` or ``window``); ``(None, "")`` if none."""
    ts = e["timestamp"]

    def fits(lst: dict[str, Any]) -> bool:
        age = ts - lst["created_at"]
        return -CLOCK_SKEW <= age <= window

    if named is not None and (named["customer_id"] is None or named["customer_id"] == e["customer_id"]) and fits(named):
        return named, "list_id"
    if e["customer_id"] is not None:
        for cand in by_customer.get(e["customer_id"], ()):
            if fits(cand) and e["product_id"] in cand["product_ids"]:
                return cand, "window"
    return None, ""


def _attribution(store: Store, e: dict[str, Any], chosen: dict[str, Any], via: str) -> Attribution:
    revenue = 0.0
    if e["event_type"] == "purchase":
        revenue = float(e["value"] or 0.0) * float(e["quantity"] or 1)
    return Attribution(
        store=store,
        event_id=e["pk"],
        event_type=e["event_type"],
        list_id=chosen["list_id"],
        list_created_at=chosen["created_at"],
        timestamp=e["timestamp"],
        customer_id=e["customer_id"],
        product_id=e["product_id"],
        revenue=revenue,
        placement=chosen["placement"],
        model_version_id=chosen["model_version_id"],
        algorithm=chosen["algorithm"],
        variant=chosen["variant"],
        via=via,
    )


def reset_attribution(store: Store) -> None:
    """Forget all attribution (after a window change): the next task run starts from the first event."""
    with store_scope(store), transaction.atomic():
        Attribution.objects.all().delete()
        AttributionSettings.objects.filter(store=store).update(last_event_id=0)
