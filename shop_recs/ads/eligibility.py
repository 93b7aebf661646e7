"""Which campaigns may be shown to whom: the in-memory campaign table and the eligibility rules.

Serving must not run an ORM query with three M2M prefetches per request, so each worker keeps the
store's *running* campaigns (active, not yet ended) as :class:`CampaignSpec` tuples, rebuilt when a
campaign is saved in this process and at most ``ADS_CAMPAIGN_CACHE_TTL`` seconds (default 5) old
otherwise. Staleness is harmless for correctness: the budget, status and dates are re-checked by the
atomic UPDATE that records an impression (``services.record_impression``), so a campaign paused or
exhausted in another worker is skipped there, never overserved.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.utils import timezone

from shop_recs.ads.models import Campaign, CampaignStatus
from shop_recs.catalog.models import Category, Product
from shop_recs.platform.cache import register_process_cache
from shop_recs.stores.scoping import store_scope


@dataclass(frozen=True)
class CampaignSpec:
    """What serving needs of one campaign; ``product_ids`` already includes the promoted categories' products."""

    pk: int
    name: str
    title: str
    image_url: str
    landing_url: str
    starts_at: datetime
    ends_at: datetime
    budget: int
    served: int
    frequency_cap: int
    weight: float
    segment_ids: frozenset[int]
    product_ids: frozenset[int]

    @property
    def targeted(self) -> bool:
        return bool(self.segment_ids)

    def creative(self) -> dict:
        return {
            "campaign_id": self.pk,
            "title": self.title,
            "image_url": self.image_url,
            "landing_url": self.landing_url,
        }


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


def _load(store_id: int, now: datetime) -> list[CampaignSpec]:
    with store_scope(store_id):
        rows = list(
            Campaign.objects.filter(status=CampaignStatus.ACTIVE, ends_at__gt=now).prefetch_related(
                "segments", "products", "categories"
            )
        )
        return [
            CampaignSpec(
                pk=c.pk,
                name=c.name,
                title=c.title,
                image_url=c.image_url,
                landing_url=c.landing_url,
                starts_at=c.starts_at,
                ends_at=c.ends_at,
                budget=c.budget,
                served=c.impressions_served,
                frequency_cap=c.frequency_cap,
                weight=float(c.weight),
                segment_ids=frozenset(s.pk for s in c.segments.all()),
                product_ids=promoted_product_ids(c),
            )
            for c in rows
        ]


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
) -> list[CampaignSpec]:
    """Campaigns this visitor may see now.

    ``segment_ids`` None means an anonymous or unknown visitor: untargeted campaigns only. The
    frequency cap applies to known customers (``shown_today``: campaign id -> impressions today).
    """
    shown_today = shown_today or {}
    out = []
    for s in specs:
        if not (s.starts_at <= now < s.ends_at) or s.served >= s.budget:
            continue
        if s.targeted and (segment_ids is None or not (s.segment_ids & set(segment_ids))):
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
