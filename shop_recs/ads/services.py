"""Ad writes: serve (rank + record impressions atomically), clicks, status changes.

Concurrency design (see docs/ads.md): an impression is recorded in one short transaction that

1. increments the (campaign, customer, day) counter with ``UPDATE ... SET count = count + 1 WHERE
   count < cap`` after an ``INSERT ... ON CONFLICT DO NOTHING`` created the row, and
2. increments the campaign's counter with ``UPDATE ... SET impressions_served = impressions_served
   + 1 WHERE impressions_served < budget AND status = 'active' AND now within the dates``,

and inserts the impression only if both UPDATEs touched a row; otherwise it rolls back. Under
READ COMMITTED, Postgres re-evaluates a conditional UPDATE's WHERE on the latest committed row after
waiting for the row lock, so concurrent requests can never push either counter past its limit: the
budget is never overrun, not even by one in-flight request.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from shop_recs.activity.models import Customer
from shop_recs.ads.eligibility import CampaignSpec, eligible_campaigns, running_campaigns
from shop_recs.ads.models import Campaign, CampaignStatus, DailyCap, Impression
from shop_recs.serving import realtime
from shop_recs.serving import scoring as serving
from shop_recs.serving.runtime import serving_state
from shop_recs.stores.scoping import store_scope

if TYPE_CHECKING:
    from shop_recs.stores.models import Store

#: Share of the ranking score a campaign gets with zero predicted affinity, so that the weight
#: still orders campaigns for visitors the recommender knows nothing about.
AFFINITY_FLOOR = 0.1
MAX_ADS = 10


@dataclass
class AdResult:
    """What the serving endpoint returns."""

    slot: str
    customer_known: bool
    ads: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"slot": self.slot, "customer_known": self.customer_known, "ads": self.ads}


def customer_targeting(external_id: str | None) -> tuple[int | None, frozenset[int] | None]:
    """(customer pk, segment ids) — (None, None) for anonymous or unknown visitors. One query."""

    if not external_id:
        return None, None
    row = (
        Customer.objects.filter(external_id=external_id)
        .values_list("pk", "profile__segment_ids", "profile__auto_segment_id")
        .first()
    )
    if row is None:
        return None, None
    pk, seg_ids, auto_id = row
    ids = {int(s) for s in (seg_ids or [])}
    if auto_id:
        ids.add(int(auto_id))
    return pk, frozenset(ids)


def predicted_affinities(store: Store, customer_pk: int | None, specs: list[CampaignSpec]) -> dict[int, float]:
    """Campaign id -> the customer's predicted affinity (0..1) for its promoted items.

    The scores are the serving layer's personal scores for the customer's history (the active
    recommender, its real-time neighbours and content similarity), min-max normalised over the
    whole catalog; a campaign's affinity is the *max* over its promoted products (one strongly
    liked product is enough to make the ad relevant). Unknown customers or an empty history: {}.
    With the model version's precomputed arrays the scores cover only the customer's candidates
    (``serving.candidate_affinities``; scaled by their maximum, promoted products outside them
    count 0), so serving an ad no longer scores the whole catalog.
    """
    if customer_pk is None or not specs:
        return {}

    activity = realtime.recent_activity(store.pk, customer_pk)
    weights = activity.weights()
    if not weights:
        return {}
    state = serving_state(store)
    lookup = serving.candidate_affinities(state, customer_pk, weights, activity.recent_products)
    if lookup is not None:
        # The precomputed path: the customer's candidates (a few hundred products) are scored, and a
        # campaign's affinity is the best of its promoted products among them (others count 0).
        out: dict[int, float] = {}
        for spec in specs:
            if len(spec.product_ids) < len(lookup):
                out[spec.pk] = max((lookup.get(pk, 0.0) for pk in spec.product_ids), default=0.0)
            else:
                out[spec.pk] = max((v for pk, v in lookup.items() if pk in spec.product_ids), default=0.0)
        return out
    scores = realtime.minmax(serving.score_history(state, weights, activity.recent_products).scores)
    index = state.snap.index
    out: dict[int, float] = {}
    for spec in specs:
        positions = [index[pk] for pk in spec.product_ids if pk in index]
        out[spec.pk] = float(scores[positions].max()) if positions and len(scores) else 0.0
    return out


def rank_campaigns(specs: list[CampaignSpec], affinities: dict[int, float]) -> list[tuple[CampaignSpec, float]]:
    """Score = weight x (floor + (1 - floor) x affinity); ties: more remaining budget, then older campaign."""
    scored = [(s, s.weight * (AFFINITY_FLOOR + (1 - AFFINITY_FLOOR) * affinities.get(s.pk, 0.0))) for s in specs]
    scored.sort(key=lambda t: (-t[1], -(t[0].budget - t[0].served) / t[0].budget, t[0].pk))
    return scored


def record_impression(
    store: Store, spec: CampaignSpec, customer_pk: int | None, *, slot: str, score: float, now: datetime
) -> Impression | None:
    """Atomically charge the budget and the customer's daily cap, then insert the impression.

    Returns None (and changes nothing) when the budget is spent, the cap reached, or the campaign no
    longer active/running.
    """
    with transaction.atomic():
        if customer_pk is not None:
            day = now.date()
            DailyCap.objects.bulk_create(
                [DailyCap(store=store, campaign_id=spec.pk, customer_id=customer_pk, day=day, count=0)],
                ignore_conflicts=True,
            )
            capped = DailyCap.objects.filter(
                campaign_id=spec.pk, customer_id=customer_pk, day=day, count__lt=spec.frequency_cap
            ).update(count=F("count") + 1)
            if not capped:
                transaction.set_rollback(True)
                return None
        charged = Campaign.objects.filter(
            pk=spec.pk,
            status=CampaignStatus.ACTIVE,
            starts_at__lte=now,
            ends_at__gt=now,
            impressions_served__lt=F("budget"),
        ).update(impressions_served=F("impressions_served") + 1)
        if not charged:
            transaction.set_rollback(True)
            return None
        return Impression.objects.create(
            store=store,
            impression_id=uuid.uuid4(),
            campaign_id=spec.pk,
            customer_id=customer_pk,
            slot=slot,
            score=round(score, 6),
            served_at=now,
        )


def serve_ads(
    store: Store, external_id: str | None, *, slot: str = "", n: int = 1, now: datetime | None = None
) -> AdResult:
    """Eligible campaigns for this visitor, ranked by predicted affinity x weight; records impressions.

    Call inside ``store_scope(store)`` (the API view does).
    """
    now = now or timezone.now()
    customer_pk, segment_ids = customer_targeting(external_id)
    specs = running_campaigns(store.pk, now)
    shown: dict[int, int] = {}
    if customer_pk is not None and specs:
        shown = dict(
            DailyCap.objects.filter(
                customer_id=customer_pk, day=now.date(), campaign_id__in=[s.pk for s in specs]
            ).values_list("campaign_id", "count")
        )
    eligible = eligible_campaigns(specs, now=now, segment_ids=segment_ids, shown_today=shown)
    result = AdResult(slot=slot, customer_known=customer_pk is not None)
    if not eligible:
        return result
    ranked = rank_campaigns(eligible, predicted_affinities(store, customer_pk, eligible))
    for spec, score in ranked:
        if len(result.ads) >= n:
            break
        imp = record_impression(store, spec, customer_pk, slot=slot, score=score, now=now)
        if imp is not None:
            result.ads.append({"impression_id": str(imp.impression_id), "score": round(score, 4), **spec.creative()})
    return result


def record_click(impression_id: uuid.UUID, now: datetime | None = None) -> tuple[bool, bool]:
    """(found, first_click). Idempotent: only the first click sets ``clicked_at`` (one conditional UPDATE)."""
    now = now or timezone.now()
    if Impression.objects.filter(impression_id=impression_id, clicked_at__isnull=True).update(clicked_at=now):
        return True, True
    return Impression.objects.filter(impression_id=impression_id).exists(), False


def set_campaign_status(campaign: Campaign, status: str) -> Campaign:
    if status not in CampaignStatus.values:
        raise ValueError(f"unknown status {status!r}")
    campaign.status = status
    campaign.status_reason = ""
    campaign.save(update_fields=["status", "status_reason", "updated_at"])
    return campaign


def pause_campaigns_losing_segment(store_id: int, segment_id: int, segment_name: str) -> int:
    """Pause every running or draft campaign of the store that targets a segment about to be deleted.

    Deleting the segment drops the campaign's link to it; a campaign left with no target segment
    would count as untargeted and go to everyone. Pausing it, with the reason, keeps the audience
    from ever widening; a merchant re-targets it and starts it again. Returns how many were paused.
    """
    reason = f"paused: its target segment “{segment_name}” was deleted"[:300]
    paused = 0
    with store_scope(store_id):
        campaigns = Campaign.objects.filter(
            segments__pk=segment_id, status__in=[CampaignStatus.ACTIVE, CampaignStatus.DRAFT]
        ).distinct()
        for campaign in campaigns:
            campaign.status, campaign.status_reason = CampaignStatus.PAUSED, reason
            campaign.save(update_fields=["status", "status_reason", "updated_at"])
            paused += 1
    return paused


def end_expired_campaigns(store: Store, now: datetime | None = None) -> int:
    """Mark running campaigns past their end date as ended (inside or outside a scope)."""

    now = now or timezone.now()
    with store_scope(store):
        ids = list(
            Campaign.objects.filter(
                status__in=[CampaignStatus.ACTIVE, CampaignStatus.PAUSED], ends_at__lte=now
            ).values_list("pk", flat=True)
        )
        for c in Campaign.objects.filter(pk__in=ids):
            set_campaign_status(c, CampaignStatus.ENDED)
    return len(ids)
