"""Which campaigns may be shown to whom: the in-memory campaign table and the eligibility rules.

Serving must not run an ORM query with three M2M prefetches per request, so each worker keeps the
store's *running* campaigns (active, not yet ended) as :class:`CampaignSpec` rows — promoted product
ids, product cards, money counters — rebuilt when a campaign is saved in this process and at most
``ADS_CAMPAIGN_CACHE_TTL`` seconds (default 5) old otherwise. Staleness is harmless for correctness:
the budget, the paced daily budget, status and dates are re-checked by the conditional UPDATE that
charges an impression (``sql.charge_impression``), so a campaign paused or spent in another worker
is refused there, never overspent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from django.conf import settings
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.utils import timezone

from shop_recs.ads.models import MICROS, Campaign, CampaignStatus, billable_cost_micros, to_micros
from shop_recs.catalog.models import Category, Product
from shop_recs.platform.cache import register_process_cache
from shop_recs.serving.snapshot import card_item
from shop_recs.stores.scoping import store_scope


@dataclass(eq=False)
class CampaignSpec:
    """What serving needs of one campaign; ``product_ids`` already includes the promoted categories' products.

    Money is in integer micro-units (``models.MICROS``). ``spend_micros``, ``spend_day`` and
    ``day_spend_micros`` are this process's latest view of the campaign's counters: loaded with the
    snapshot and updated from each charge's ``RETURNING`` (``services.serve_ads``), so eligibility
    skips a spent or over-paced campaign without asking the database. They are a pre-filter only:
    the charging UPDATE re-checks the row.
    """

    pk: int
    name: str
    title: str
    image_url: str
    landing_url: str
    starts_at: datetime
    ends_at: datetime
    pricing_model: str
    #: What one impression must leave room for: CPM the impression (bid / 1000), CPC one click (bid).
    room_micros: int
    budget_micros: int
    daily_budget_micros: int | None
    spend_micros: int
    spend_day: date | None
    day_spend_micros: int
    frequency_cap: int
    weight: float
    segment_ids: frozenset[int]
    product_ids: frozenset[int]
    #: Promoted products in order, for the product cards of the API response (pk, sku, title, price,
    #: currency, image_url, url, in_stock); at most ``CARD_PRODUCTS``.
    cards: tuple[dict, ...] = ()
    #: Refused by the database since the snapshot was loaded (monotonic time): skipped until then + a
    #: second, so a spent campaign costs no round trip per request until the snapshot refreshes.
    refused_until: float = 0.0

    @property
    def targeted(self) -> bool:
        return bool(self.segment_ids)

    def spent_today(self, day: date) -> int:
        return self.day_spend_micros if self.spend_day == day else 0

    def has_budget(self) -> bool:
        return self.spend_micros + self.room_micros <= self.budget_micros

    def within_pace(self, now: datetime, tolerance: float) -> bool:
        """Today's spend plus this impression stays within the paced share of the daily budget."""
        if self.daily_budget_micros is None:
            return True
        allowed = round(self.daily_budget_micros * paced_ppm(now, tolerance) / MICROS)
        return self.spent_today(now.date()) + self.room_micros <= allowed

    def creative(self) -> dict:
        return {
            "campaign_id": self.pk,
            "title": self.title,
            "image_url": self.image_url,
            "landing_url": self.landing_url,
            "products": list(self.cards),
        }


#: Product cards carried per ad in the API response.
CARD_PRODUCTS = 4


def paced_ppm(now: datetime, tolerance: float) -> int:
    """The share of a daily budget that may be spent by ``now`` (UTC day), in millionths.

    The elapsed share of the day plus ``tolerance`` (``ADS_PACING_TOLERANCE``, default 0.05: about
    72 minutes' worth of the day's budget may be spent ahead of an even pace), capped at the whole
    daily budget. A campaign that spent faster is skipped until the day catches up.
    """
    utc = now.astimezone(UTC)
    elapsed = (utc.hour * 3600 + utc.minute * 60 + utc.second + utc.microsecond / 1e6) / 86400
    return int(min(1.0, elapsed + tolerance) * MICROS)


_cache: dict[int, tuple[float, list[CampaignSpec]]] = {}
_lock = threading.Lock()


def invalidate_campaigns(store_id: int | None = None) -> None:
    with _lock:
        if store_id is None:
            _cache.clear()
        else:
            _cache.pop(store_id, None)


register_process_cache("ads.campaigns", invalidate_campaigns)


def _ttl() -> float:
    return settings.ADS_CAMPAIGN_CACHE_TTL


def promoted_product_ids(campaign: Campaign) -> frozenset[int]:
    """Explicit products plus every product in (or below) a promoted category (inside store_scope)."""

    ids = set(campaign.products.values_list("pk", flat=True))
    paths = list(campaign.categories.values_list("path", flat=True))
    if paths:
        cat_ids: set[int] = set()
        for cat_pk, path in Category.objects.values_list("pk", "path"):
            if any(path == p or path.startswith(p + " > ") for p in paths):
                cat_ids.add(cat_pk)
        ids |= set(Product.objects.filter(category_id__in=cat_ids).values_list("pk", flat=True))
    return frozenset(ids)


def room_micros(pricing_model: str, bid: object) -> int:
    """What a campaign must still be able to pay to serve one more impression (see CampaignSpec)."""
    return billable_cost_micros(pricing_model, bid)  # type: ignore[arg-type]


def product_card(product: Product, store_currency: str) -> dict:
    """A promoted product as the shop renders it: the same card fields as every other endpoint
    (``serving.snapshot.card_item``: price as a decimal string, empty URLs as null)."""
    return card_item(
        product.sku,
        product.title,
        product.price,
        product.currency or store_currency,
        product.in_stock,
        product.image_url,
        product.url,
    )


def spec_of(campaign: Campaign, store_currency: str = "") -> CampaignSpec:
    """The serving view of one campaign row (its relations are read inside the caller's scope)."""
    product_ids = promoted_product_ids(campaign)
    # Cards: the explicitly promoted products first, then the promoted categories' (active ones only).
    explicit = list(campaign.products.filter(is_active=True).order_by("pk")[:CARD_PRODUCTS])
    more = CARD_PRODUCTS - len(explicit)
    if more > 0 and len(product_ids) > len(explicit):
        seen = [p.pk for p in explicit]
        explicit += list(
            Product.objects.filter(pk__in=product_ids, is_active=True).exclude(pk__in=seen).order_by("pk")[:more]
        )
    return _spec(campaign, product_ids, tuple(product_card(p, store_currency) for p in explicit))


def _spec(campaign: Campaign, product_ids: frozenset[int], cards: tuple[dict, ...]) -> CampaignSpec:
    return CampaignSpec(
        pk=campaign.pk,
        name=campaign.name,
        title=campaign.title,
        image_url=campaign.image_url,
        landing_url=campaign.landing_url,
        starts_at=campaign.starts_at,
        ends_at=campaign.ends_at,
        pricing_model=campaign.pricing_model,
        room_micros=room_micros(campaign.pricing_model, campaign.bid),
        budget_micros=to_micros(campaign.budget),
        daily_budget_micros=None if campaign.daily_budget is None else to_micros(campaign.daily_budget),
        spend_micros=campaign.spend_micros,
        spend_day=campaign.spend_day,
        day_spend_micros=campaign.day_spend_micros,
        frequency_cap=campaign.frequency_cap,
        weight=float(campaign.weight),
        segment_ids=frozenset(s.pk for s in campaign.segments.all()),
        product_ids=product_ids,
        cards=cards,
    )


def _load(store_id: int, now: datetime) -> list[CampaignSpec]:
    """The store's running campaigns as :func:`spec_of` builds them, in a fixed handful of queries.

    Why not ``spec_of`` per campaign: that is about six queries per campaign (the category tree and
    the promoted categories' products each time), ~50 round trips and ~100 ms of a worker for eight
    campaigns on the benchmark, once per ``ADS_CAMPAIGN_CACHE_TTL`` in every worker, which the
    requests queued behind it saw as their p99. Here: the campaigns with their segments, categories
    and products (4), the category tree and the promoted categories' products (2, only when a
    campaign promotes categories) and the card products (1).
    """
    with store_scope(store_id):
        rows = list(
            Campaign.objects.filter(status=CampaignStatus.ACTIVE, ends_at__gt=now)
            .select_related("store")
            .prefetch_related("segments", "categories", "products")
        )
        if not rows:
            return []
        subtree = _promoted_categories(rows)
        active: dict[int, bool] = {}
        by_category: dict[int, list[int]] = {}
        wanted = set().union(*subtree.values())
        if wanted:
            for pk, category_id, is_active in Product.objects.filter(category_id__in=wanted).values_list(
                "pk", "category_id", "is_active"
            ):
                by_category.setdefault(category_id, []).append(pk)
                active[pk] = is_active
        promoted: dict[int, frozenset[int]] = {}
        card_pks: dict[int, list[int]] = {}
        for c in rows:
            explicit = list(c.products.all())
            ids = {p.pk for p in explicit}
            for category_id in subtree.get(c.pk, ()):
                ids.update(by_category.get(category_id, ()))
            active.update((p.pk, p.is_active) for p in explicit)
            # The same cards as spec_of: the explicitly promoted active products first, then the
            # other active promoted products, each by pk.
            chosen = sorted(p.pk for p in explicit if p.is_active)[:CARD_PRODUCTS]
            more = CARD_PRODUCTS - len(chosen)
            if more > 0 and len(ids) > len(chosen):
                seen = set(chosen)
                chosen += sorted(pk for pk in ids if active.get(pk) and pk not in seen)[:more]
            promoted[c.pk], card_pks[c.pk] = frozenset(ids), chosen
        products = Product.objects.in_bulk({pk for pks in card_pks.values() for pk in pks})
        return [
            _spec(
                c,
                promoted[c.pk],
                tuple(product_card(products[pk], c.store.currency) for pk in card_pks[c.pk] if pk in products),
            )
            for c in rows
        ]


def _promoted_categories(rows: list[Campaign]) -> dict[int, set[int]]:
    """Campaign id -> the ids of its promoted categories and of every category below them (one read of
    the category tree for all campaigns; the same rule as :func:`promoted_product_ids`)."""
    paths = {c.pk: [cat.path for cat in c.categories.all()] for c in rows}
    if not any(paths.values()):
        return {}
    tree = list(Category.objects.values_list("pk", "path"))
    return {
        pk: {cat_pk for cat_pk, path in tree if any(path == p or path.startswith(p + " > ") for p in mine)}
        for pk, mine in paths.items()
        if mine
    }


def running_campaigns(store_id: int, now: datetime | None = None) -> list[CampaignSpec]:
    """The store's active, not yet ended campaigns (cached per worker, see the module docstring)."""
    now = now or timezone.now()
    hit = _cache.get(store_id)
    if hit is not None and time.monotonic() - hit[0] < _ttl():
        return hit[1]
    specs = _load(store_id, now)
    with _lock:
        _cache[store_id] = (time.monotonic(), specs)
    return specs


def eligible_campaigns(
    specs: Iterable[CampaignSpec],
    *,
    now: datetime,
    segment_ids: frozenset[int] | set[int] | None,
    shown_today: dict[int, int] | None = None,
    pacing_tolerance: float | None = None,
) -> list[CampaignSpec]:
    """Campaigns this visitor may see now.

    ``segment_ids`` None means an anonymous or unknown visitor: untargeted campaigns only. The
    frequency cap applies to known customers (``shown_today``: campaign id -> impressions today).
    A campaign whose budget cannot pay for one more impression (CPC: one more click), or that has
    spent more of today's budget than the elapsed share of the day allows (pacing), is skipped.
    """
    shown_today = shown_today or {}
    tolerance = settings.ADS_PACING_TOLERANCE if pacing_tolerance is None else pacing_tolerance
    mono = time.monotonic()
    out = []
    for s in specs:
        if not (s.starts_at <= now < s.ends_at) or s.refused_until > mono:
            continue
        if not s.has_budget() or not s.within_pace(now, tolerance):
            continue
        if s.targeted and (segment_ids is None or s.segment_ids.isdisjoint(segment_ids)):
            continue
        if segment_ids is not None and shown_today.get(s.pk, 0) >= s.frequency_cap:
            continue
        out.append(s)
    return out


def _on_change(sender, instance=None, **kwargs) -> None:
    store_id = getattr(instance, "store_id", None)
    invalidate_campaigns(store_id)


def connect_signals() -> None:
    post_save.connect(_on_change, sender=Campaign, dispatch_uid="ads_campaign_saved")
    post_delete.connect(_on_change, sender=Campaign, dispatch_uid="ads_campaign_deleted")
    for through in (Campaign.products.through, Campaign.categories.through, Campaign.segments.through):
        m2m_changed.connect(_on_change, sender=through, dispatch_uid=f"ads_m2m_{through.__name__}")
