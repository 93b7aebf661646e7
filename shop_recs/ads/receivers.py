"""What ads does when activity forgets or merges customers (``activity.erasure``'s signals, connected in
``apps.py``): a customer's impressions (with their clicks, ``clicked_at``) and frequency counters.

A campaign's ``impressions_served`` counter is a published aggregate that also paces its budget: it
is left as it is (docs/privacy.md), so an erasure never lets a campaign spend past its budget.
"""

from __future__ import annotations

from typing import Any

from django.db.models import F

from shop_recs.ads.models import DailyCap, Impression
from shop_recs.stores.models import Store


def erase_customer_rows(
    sender: Any, store: Store, customer: Any, report: Any, dry_run: bool = False, **kwargs: Any
) -> None:
    """``customer_erasing``: delete (or, in a dry run, count) the customer's impressions and caps."""
    for model in (Impression, DailyCap):
        rows = model.objects.filter(customer_id=customer.pk)
        report.add(model, rows.count() if dry_run else rows.delete()[0])


def merge_customer_rows(sender: Any, store: Store, target: Any, source: Any, report: Any, **kwargs: Any) -> None:
    """``customers_merging``: the duplicate's impressions move to the target; its daily counters are
    added to the target's for the same campaign and day (one row per campaign, customer and day)."""
    if source is None:
        report.add(Impression, 0)
        report.add(DailyCap, 0)
        return
    report.add(Impression, Impression.objects.filter(customer_id=source.pk).update(customer_id=target.pk))
    moved = 0
    for cap in DailyCap.objects.filter(customer_id=source.pk).order_by("pk"):
        mine = DailyCap.objects.filter(customer_id=target.pk, campaign_id=cap.campaign_id, day=cap.day)
        if mine.update(count=F("count") + cap.count):
            cap.delete()
        else:
            DailyCap.objects.filter(pk=cap.pk).update(customer_id=target.pk)
        moved += 1
    report.add(DailyCap, moved)
