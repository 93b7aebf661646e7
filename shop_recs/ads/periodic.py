"""Campaign upkeep, the beat entry ``campaign-upkeep``: expiry, spent budgets, old frequency counters.

Serving already refuses a campaign past its end or with its budget spent (checked on every
impression), so nothing a shopper sees changes here; this keeps the status column truthful for the
campaign pages (an ended campaign stops showing as "active" and frees its slot) and keeps the
frequency-cap table from growing forever: a counter is only read on its own (UTC) day.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from shop_recs.ads import services
from shop_recs.ads.models import Campaign, CampaignStatus, DailyCap, to_micros
from shop_recs.stores.models import Store
from shop_recs.stores.scoping import store_scope

#: Frequency counters of days older than this are deleted (one spare day for clock skew).
KEEP_COUNTER_DAYS = 2


def end_spent_campaigns(store: Store) -> int:
    """End the store's active campaigns whose budget cannot pay for one more billable event
    (a CPM campaign: one more impression; a CPC campaign: one more click)."""
    with store_scope(store):
        spent = [
            c
            for c in Campaign.objects.filter(status=CampaignStatus.ACTIVE).order_by("pk")
            if c.spend_micros + c.cost_micros > to_micros(c.budget)
        ]
        for campaign in spent:
            services.set_campaign_status(campaign, CampaignStatus.ENDED)
    return len(spent)


def run_campaign_upkeep(now: datetime | None = None) -> dict[str, Any]:
    """End expired and spent campaigns of every store and purge old frequency counters; figures per store."""
    now = now or timezone.now()
    per_store: dict[int, dict[str, int]] = {}
    for store in Store.objects.order_by("pk"):
        expired = services.end_expired_campaigns(store, now)
        spent = end_spent_campaigns(store)
        if expired or spent:
            per_store[store.pk] = {"expired": expired, "spent": spent}
    # all stores: counters of past days are never read again, whichever store they belong to.
    purged, _ = DailyCap.all_stores.filter(day__lt=(now - timedelta(days=KEEP_COUNTER_DAYS)).date()).delete()
    return {
        "expired": sum(v["expired"] for v in per_store.values()),
        "spent": sum(v["spent"] for v in per_store.values()),
        "purged": purged,
        "per_store": per_store,
    }
