"""Fixtures of the security walks: two fully populated tenants and the URL inventory of the site.

``tenant_world`` builds, for one store, a row of every kind a dashboard or API URL names (product,
customer, event, segment, experiment and variant, campaign and impression, training run and model
version, import, profile run, evaluation run, tuning job, API key, membership). Each row of the
"beta" tenant carries a marker string that nothing else in the test database contains, so a leak is
a plain substring in a response body.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.apps import apps
from django.db import models
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from shop_recs.stores.models import ApiKey, Membership, Role, Store
from shop_recs.stores.scoping import unscoped

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@dataclass
class World:
    """One tenant's rows, the URL values that name them, and the strings that must never leak."""

    store: Store
    merchant: Any
    analyst: Any
    raw_key: str
    revoked_raw_key: str
    #: URL parameter -> value naming one of this store's rows (``run_id`` is per namespace, see ``kwargs_for``).
    ids: dict[str, Any] = field(default_factory=dict)
    #: Strings only this tenant's rows hold (titles, names, descriptions, file names, usernames).
    secrets: tuple[str, ...] = ()
    #: The identifiers a caller puts in URLs and bodies (skus, customer ids): a leak only when the
    #: request did not carry them itself (an error message may echo what the caller sent).
    identifiers: tuple[str, ...] = ()


def build_world(store: Store, tag: str, make_user) -> World:
    """Every kind of row the walked URLs can name, for ``store``; ``tag`` ("alpha"/"beta") marks them."""
    from analytics.evaluation.models import EvaluationRun, TuningJob
    from analytics.models import ProfileRun, Segment
    from shop_recs.activity.models import Customer, Event
    from shop_recs.ads.models import Campaign, CampaignStatus, Impression
    from shop_recs.catalog.models import Category, Product
    from shop_recs.imports.models import ImportJob, ImportKind
    from shop_recs.search.models import SearchQuery
    from shop_recs.serving.models import Experiment, Placement, StoreRules, Variant
    from shop_recs.stores.invitations import invite
    from shop_recs.training.models import ModelVersion, TrainingRun

    up = tag.upper()
    merchant = make_user(f"{tag}-secret-merchant", store, Role.MERCHANT)
    analyst = make_user(f"{tag}-secret-analyst", store, Role.ANALYST)
    key, raw = ApiKey.generate(store, f"{tag}-secret-keyname", created_by=merchant)
    revoked, revoked_raw = ApiKey.generate(store, f"{tag}-secret-revoked-keyname")
    revoked.revoke()
    now = timezone.now()
    with unscoped():
        category = Category.objects.create(store=store, name=f"{tag}-secret-category", path=f"{tag}-secret-category")
        product = Product.objects.create(
            store=store,
            sku=f"{up}-SECRET-SKU",
            title=f"{tag}-secret-title",
            brand=f"{tag}-secret-brand",
            description=f"{tag}-secret-description",
            category=category,
            price=Decimal("12.50"),
        )
        other = Product.objects.create(store=store, sku=f"{up}-SECRET-SKU2", title=f"{tag}-secret-title2", price=3)
        customer = Customer.objects.create(store=store, external_id=f"{tag}-secret-customer", country="DE")
        buyer = Customer.objects.create(store=store, external_id=f"{tag}-secret-buyer", country="FR")
        events = []
        for i, (who, what, kind) in enumerate(
            [
                (customer, product, "view"),
                (customer, other, "view"),
                (customer, product, "purchase"),
                (buyer, product, "purchase"),
                (buyer, other, "purchase"),
            ]
        ):
            events.append(
                Event.objects.create(
                    store=store,
                    customer=who,
                    product=what,
                    event_type=kind,
                    value=10 if kind == "purchase" else None,
                    quantity=1 if kind == "purchase" else None,
                    order_id=f"{tag}-secret-order-{i}" if kind == "purchase" else "",
                    timestamp=now - timedelta(hours=i + 1),
                )
            )
        SearchQuery.objects.create(
            store=store, query=f"{tag}-secret-query", normalized_query=f"{tag}-secret-query", n_results=0
        )
        segment = Segment.objects.create(
            store=store,
            kind=Segment.Kind.RULE,
            name=f"{tag}-secret-segment",
            description=f"{tag}-secret-segment-description",
            rules={"all": [{"field": "monetary", "op": ">", "value": 0}]},
        )
        run = TrainingRun.objects.create(store=store, algorithms=["popularity"], created_by=merchant)
        version = ModelVersion.objects.create(
            store=store,
            run=run,
            algorithm="popularity",
            artifact_path=f"{tag}-secret-artifact",
            checksum="0" * 64,
            metrics={"ndcg@10": 0.1},
        )
        experiment = Experiment.objects.create(
            store=store, name=f"{tag}-secret-experiment", description=f"{tag}-secret-exp-desc", placement="home"
        )
        variant = Variant.objects.create(
            store=store, experiment=experiment, name=f"{tag}-secret-variant", kind="rules", traffic=50, position=0
        )
        Variant.objects.create(
            store=store, experiment=experiment, name=f"{tag}-secret-variant-b", kind="rules", traffic=50, position=1
        )
        # A placement of its own, with rules (pins) of its own: the placement pages name it by id.
        placement = Placement.objects.create(store=store, key="pdp", name=f"{tag}-secret-placement")
        StoreRules.objects.create(store=store, placement=placement, pinned_product_ids=[product.pk])
        campaign = Campaign.objects.create(
            store=store,
            name=f"{tag}-secret-campaign",
            title=f"{tag}-secret-campaign-title",
            landing_url=f"https://{tag}-secret-landing.example/",
            starts_at=T0,
            ends_at=now + timedelta(days=30),
            budget=100,
            status=CampaignStatus.PAUSED,
        )
        impression = Impression.objects.create(store=store, campaign=campaign, customer=customer)
        import_job = ImportJob.objects.create(
            store=store,
            kind=ImportKind.CATALOG,
            file_name=f"{tag}-secret-file.csv",
            message=f"{tag}-secret-import-message",
            created_by=merchant,
        )
        profile_run = ProfileRun.objects.create(store=store, created_by=merchant)
        eval_run = EvaluationRun.objects.create(store=store, algorithms=["popularity"], ks=[10], created_by=merchant)
        tuning_job = TuningJob.objects.create(store=store, algorithms=["popularity"], created_by=merchant)
    membership = Membership.objects.get(store=store, user=analyst)
    invitation = invite(store, f"{tag}-secret-invitee@example.com", Role.ANALYST, merchant).invitation
    return World(
        store=store,
        merchant=merchant,
        analyst=analyst,
        raw_key=raw,
        revoked_raw_key=revoked_raw,
        ids={
            "store_slug": store.slug,
            "sku": product.sku,
            "external_id": customer.external_id,
            "key_id": key.pk,
            "membership_id": membership.pk,
            "invitation_id": invitation.pk,
            "training_run_id": run.pk,
            "profile_run_id": profile_run.pk,
            "version_id": version.pk,
            "job_id": import_job.pk,
            "segment_id": segment.pk,
            "campaign_id": campaign.pk,
            "eval_run_id": eval_run.pk,
            "tuning_job_id": tuning_job.pk,
            "experiment_id": experiment.pk,
            "placement_id": placement.pk,
            "impression_id": impression.impression_id,
            # Not URL parameters: values for query strings and bodies.
            "variant_id": variant.pk,
            "event_id": events[0].pk,
            "buyer": buyer.external_id,
            "sku2": other.sku,
        },
        secrets=tuple(
            s.replace("TAG", tag)
            for s in (
                "TAG-secret-title",
                "TAG-secret-brand",
                "TAG-secret-description",
                "TAG-secret-category",
                "TAG-secret-merchant",
                "TAG-secret-analyst",
                "TAG-secret-keyname",
                "TAG-secret-query",
                "TAG-secret-segment",
                "TAG-secret-experiment",
                "TAG-secret-exp-desc",
                "TAG-secret-variant",
                "TAG-secret-campaign",
                "TAG-secret-landing",
                "TAG-secret-file",
                "TAG-secret-import-message",
                "TAG-secret-order",
                "TAG-secret-artifact",
                "TAG-secret-invitee",
                "TAG-secret-placement",
            )
        ),
        identifiers=(product.sku, other.sku, customer.external_id, buyer.external_id),
    )


@pytest.fixture
def alpha(store, make_user) -> World:
    """The caller's tenant ("Alpha Shop", slug ``alpha``)."""
    return build_world(store, "alpha", make_user)


@pytest.fixture
def beta(other_store, make_user) -> World:
    """The victim tenant ("Beta Shop", slug ``beta``)."""
    return build_world(other_store, "beta", make_user)


# --- what a tenant owns, for "nothing changed" checks ----------------------------------------------


def store_owned_models() -> list[type[models.Model]]:
    """Every model with a foreign key to ``Store`` (found in the app registry, so new ones count)."""
    return sorted(
        (
            m
            for m in apps.get_models()
            if any(isinstance(f, models.ForeignKey) and f.related_model is Store for f in m._meta.concrete_fields)
        ),
        key=lambda m: m._meta.label,
    )


def snapshot(store: Store) -> dict[str, list[dict[str, Any]]]:
    """Every row (all columns) of every store-owned table for ``store``, plus the store row itself."""
    out: dict[str, list[dict[str, Any]]] = {}
    with unscoped():
        out["stores.Store"] = list(Store.objects.filter(pk=store.pk).values())
        for model in store_owned_models():
            fk = next(
                f.name
                for f in model._meta.concrete_fields
                if isinstance(f, models.ForeignKey) and f.related_model is Store
            )
            out[model._meta.label] = list(model._base_manager.filter(**{fk: store}).order_by("pk").values())
    return out


def snapshot_diff(before: dict[str, list[dict]], after: dict[str, list[dict]]) -> dict[str, str]:
    """The tables whose rows differ, with a short description of how."""
    diff = {}
    for label in sorted(set(before) | set(after)):
        old, new = before.get(label, []), after.get(label, [])
        if old != new:
            diff[label] = f"{len(old)} rows -> {len(new)} rows; first difference: " + next(
                (f"{a} != {b}" for a, b in zip(old, new, strict=False) if a != b), "row count"
            )
    return diff


# --- the URL inventory ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """One URL pattern of the site: its qualified name, full route text, parameters and view."""

    name: str
    route: str
    params: tuple[str, ...]
    callback: Any
    #: The ``urlconf_name`` of the include it sits in (``shop_recs.api_urls`` for the API).
    includes: tuple[str, ...]

    @property
    def is_api(self) -> bool:
        return "shop_recs.api_urls" in self.includes

    @property
    def is_store_page(self) -> bool:
        return not self.is_api and "store_slug" in self.params

    @property
    def view_class(self) -> Any:
        return getattr(self.callback, "view_class", None) or getattr(self.callback, "cls", None)


def all_routes() -> list[Route]:
    """Every URL pattern of the root URLconf, found by walking the resolver."""
    found: list[Route] = []

    def walk(patterns, namespace: str, prefix: str, params: tuple[str, ...], includes: tuple[str, ...]) -> None:
        for p in patterns:
            here = (*params, *p.pattern.regex.groupindex)
            if isinstance(p, URLResolver):
                ns = ":".join(part for part in (namespace, p.namespace) if part)
                conf = p.urlconf_name if isinstance(p.urlconf_name, str) else getattr(p.urlconf_name, "__name__", "")
                walk(p.url_patterns, ns, prefix + str(p.pattern), here, (*includes, conf))
            elif isinstance(p, URLPattern):
                route = prefix + str(p.pattern)
                name = f"{namespace}:{p.name}" if namespace else (p.name or route)
                found.append(Route(name, route, here, p.callback, includes))

    walk(get_resolver().url_patterns, "", "", (), ())
    return found
