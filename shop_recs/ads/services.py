"""Ad writes: serve (rank + charge and record impressions atomically), clicks, status changes.

Round trips of ``GET /api/v1/ads`` (issue #15): the campaigns, their promoted products and the
pacing view come from the per-process snapshot (``eligibility.running_campaigns``); the customer and
their recent activity from serving's cache (``live_activity.serving_customer``: none on a hit, one
otherwise); their segments from this process's memory (``visitors.targeting``: none while younger than
``ADS_VISITOR_CACHE_TTL``, else one query, ``sql.visitor_rows``); and each served ad is one statement on
PostgreSQL (``sql.charge_impression``: cap, charge and INSERT). The frequency cap is not read before the
charge: the charging statement enforces it, and ``visitors`` keeps a lower bound of the counters as a
pre-filter.
Exactness (never past the budget, the daily budget or the cap) is the database's: see
``shop_recs/ads/sql.py`` and docs/ads.md.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils import timezone
from django_scopes import get_scope

from shop_recs.ads import sql, visitors
from shop_recs.ads.eligibility import CampaignSpec, eligible_campaigns, paced_ppm, running_campaigns
from shop_recs.ads.models import Campaign, CampaignStatus
from shop_recs.serving import live_activity, realtime
from shop_recs.serving import scoring as serving
from shop_recs.serving.runtime import serving_state
from shop_recs.stores.scoping import ScopeError, store_scope

if TYPE_CHECKING:
    from shop_recs.stores.models import Store

#: Share of the ranking score a campaign gets with zero predicted affinity, so that the weight
#: still orders campaigns for visitors the recommender knows nothing about.
AFFINITY_FLOOR = 0.1
MAX_ADS = 10
#: After the database refused a campaign (spent, paced out, paused elsewhere), this process skips it
#: for this long instead of trying it again on every request; the snapshot's refresh brings the truth.
REFUSED_SKIP_SECONDS = 1.0
#: The key of the ads' candidate lookup in a cached customer's ``ServingCustomer.memo``.
_MEMO_KEY = "ads.affinity"


@dataclass
class AdResult:
    """What the serving endpoint returns."""

    slot: str
    customer_known: bool
    ads: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"slot": self.slot, "customer_known": self.customer_known, "ads": self.ads}


@dataclass
class Visitor:
    """Who asks for ads: the customer pk (None: anonymous or unknown), their segments (None: untargeted
    campaigns only), today's frequency counters per campaign (a lower bound: ``visitors``) and, for
    known customers, their activity and its memo (``ServingCustomer.memo``: dropped with the activity)."""

    pk: int | None = None
    segment_ids: frozenset[int] | None = None
    shown_today: dict[int, int] = field(default_factory=dict)
    activity: realtime.Activity | None = None
    memo: dict[str, Any] | None = None


def _scoped_store_id() -> int:
    """The store of the active ``store_scope`` (raw SQL must name it; a scope on several stores or none is refused)."""
    value = get_scope().get("store")
    if value is None or isinstance(value, (list, tuple, set)) or not get_scope().get("_enabled", False):
        raise ScopeError("ads: a single-store scope must be active")
    return int(getattr(value, "pk", value))


#: Kept under its old name: the parser moved to ``visitors`` with the segment read.
_json_list = visitors.json_list


def visitor(store_id: int, external_id: str | None, now: datetime) -> Visitor:
    """The visitor's targeting: serving's cached customer (pk + activity) and the profile's segments
    with a lower bound of today's frequency counters (``visitors.targeting``: this process's memory,
    or one query, ``sql.visitor_rows``)."""
    if not external_id:
        return Visitor()
    customer = live_activity.serving_customer(store_id, external_id)
    if customer is None:
        return Visitor()
    day = now.date()
    known = visitors.targeting(store_id, customer.pk, day)
    return Visitor(customer.pk, known.segment_ids, known.for_day(day), customer.activity, customer.memo)


def customer_targeting(external_id: str | None) -> tuple[int | None, frozenset[int] | None]:
    """(customer pk, segment ids) — (None, None) for anonymous or unknown visitors (inside ``store_scope``)."""
    v = visitor(_scoped_store_id(), external_id, timezone.now())
    return v.pk, v.segment_ids


def predicted_affinities(
    store: Store,
    customer_pk: int | None,
    specs: list[CampaignSpec],
    activity: realtime.Activity | None = None,
    memo: dict[str, Any] | None = None,
) -> dict[int, float]:
    """Campaign id -> the customer's predicted affinity (0..1) for its promoted items.

    The scores are the serving layer's personal scores for the customer's history (the active
    recommender, its real-time neighbours and content similarity), min-max normalised over the
    whole catalog; a campaign's affinity is the *max* over its promoted products (one strongly
    liked product is enough to make the ad relevant). Unknown customers or an empty history: {}.
    With the model version's precomputed arrays the scores cover only the customer's candidates
    (``serving.candidate_affinities``; scaled by their maximum, promoted products outside them
    count 0), so serving an ad no longer scores the whole catalog. ``memo`` (the cached customer's
    ``ServingCustomer.memo``, dropped when their activity changes) keeps that lookup per serving state,
    so a returning customer's request scores nothing.
    """
    if customer_pk is None or not specs:
        return {}
    kept = memo.get(_MEMO_KEY) if memo is not None else None
    # Only a precomputed lookup is kept, so a kept one means this activity has weights.
    state = serving_state(store) if kept is not None else None
    if kept is not None and kept[0] == state.built_at:
        lookup = kept[1]
    else:
        if activity is None:
            activity = realtime.recent_activity(store.pk, customer_pk)
        weights = activity.weights()
        if not weights:
            return {}
        if state is None:
            state = serving_state(store)
        lookup = serving.candidate_affinities(state, customer_pk, weights, activity.recent_products)
        if memo is not None and lookup is not None:
            memo[_MEMO_KEY] = (state.built_at, lookup)
    if lookup is not None:
        # The precomputed path: the customer's candidates (a few hundred products) are scored, and a
        # campaign's affinity is the best of its promoted products among them (others count 0). The
        # set intersection runs in C; a Python loop over a category's products cost ~0.15 ms a request.
        keys = lookup.keys()
        out: dict[int, float] = {}
        for spec in specs:
            common = keys & spec.product_ids
            out[spec.pk] = max([lookup[pk] for pk in common]) if common else 0.0
        return out
    scores = realtime.minmax(serving.score_history(state, weights, activity.recent_products).scores)
    index = state.snap.index
    out: dict[int, float] = {}
    for spec in specs:
        positions = [index[pk] for pk in spec.product_ids if pk in index]
        out[spec.pk] = float(scores[positions].max()) if positions and len(scores) else 0.0
    return out


def rank_campaigns(specs: list[CampaignSpec], affinities: dict[int, float]) -> list[tuple[CampaignSpec, float]]:
    """Score = weight x (floor + (1 - floor) x affinity); ties: more remaining budget (share), then older campaign."""
    scored = [(s, s.weight * (AFFINITY_FLOOR + (1 - AFFINITY_FLOOR) * affinities.get(s.pk, 0.0))) for s in specs]
    scored.sort(key=lambda t: (-t[1], -(t[0].budget_micros - t[0].spend_micros) / t[0].budget_micros, t[0].pk))
    return scored


@dataclass(frozen=True)
class Served:
    """One recorded impression: its id and what it cost (micro-units)."""

    impression_id: uuid.UUID
    cost_micros: int


def record_impression(
    store: Store, spec: CampaignSpec, customer_pk: int | None, *, slot: str, score: float, now: datetime
) -> Served | None:
    """Atomically charge the budget (and the customer's daily cap), then record the impression.

    Returns None (and changes nothing) when the budget or the paced daily budget cannot pay, the cap
    is reached, or the campaign is no longer active/running. The spec's spend counters are updated
    from the charge (``RETURNING``); a refusal keeps this process from retrying the campaign for a
    second (the snapshot's next refresh brings the truth).
    """
    charged = sql.charge_impression(
        store.pk,
        spec.pk,
        customer_pk,
        cap=spec.frequency_cap,
        now=now,
        day=now.date(),
        paced_ppm=paced_ppm(now, settings.ADS_PACING_TOLERANCE) if spec.daily_budget_micros is not None else 0,
        slot=slot,
        score=score,
    )
    if charged == sql.REFUSED_CAP:
        if customer_pk is not None:
            visitors.note_capped(store.pk, customer_pk, spec.pk, spec.frequency_cap, now.date())
        return None
    if charged == sql.REFUSED_CAMPAIGN:
        spec.refused_until = time.monotonic() + REFUSED_SKIP_SECONDS
        return None
    impression_id, counters = charged
    if customer_pk is not None:
        visitors.note_served(store.pk, customer_pk, spec.pk, now.date())
    spec.spend_micros, spec.day_spend_micros, spec.spend_day = (
        counters.spend_micros,
        counters.day_spend_micros,
        now.date(),
    )
    return Served(impression_id, counters.cost_micros)


def serve_ads(
    store: Store, external_id: str | None, *, slot: str = "", n: int = 1, now: datetime | None = None
) -> AdResult:
    """Eligible campaigns for this visitor, ranked by predicted affinity x weight; records impressions.

    Call inside ``store_scope(store)`` (the API view does).
    """
    now = now or timezone.now()
    specs = running_campaigns(store.pk, now)
    who = visitor(store.pk, external_id, now)
    result = AdResult(slot=slot, customer_known=who.pk is not None)
    eligible = eligible_campaigns(specs, now=now, segment_ids=who.segment_ids, shown_today=who.shown_today)
    if not eligible:
        return result
    ranked = rank_campaigns(eligible, predicted_affinities(store, who.pk, eligible, who.activity, who.memo))
    for spec, score in ranked:
        if len(result.ads) >= n:
            break
        served = record_impression(store, spec, who.pk, slot=slot, score=score, now=now)
        if served is not None:
            result.ads.append({"impression_id": str(served.impression_id), "score": round(score, 4), **spec.creative()})
    return result


def record_click(
    impression_id: uuid.UUID, now: datetime | None = None, *, store_id: int | None = None
) -> tuple[bool, bool]:
    """(found, first_click). Idempotent: only the first click sets ``clicked_at``; a CPC campaign is
    charged its bid for that first click only, within its budgets (``sql.charge_click``)."""
    now = now or timezone.now()
    found, first, _cost = sql.charge_click(store_id or _scoped_store_id(), impression_id, now=now)
    return found, first


#: The fields whose change alters what shoppers see (recorded as a ShopperFacingChange).
SHOPPER_FACING_FIELDS = (
    "status",
    "title",
    "image_url",
    "landing_url",
    "starts_at",
    "ends_at",
    "pricing_model",
    "bid",
    "budget",
    "daily_budget",
    "frequency_cap",
    "weight",
)


def campaign_values(campaign: Campaign) -> dict[str, Any]:
    """The campaign's shopper-facing values (and its promoted/targeted ids) for the change record."""
    values: dict[str, Any] = {name: getattr(campaign, name) for name in SHOPPER_FACING_FIELDS}
    for name in ("bid", "budget", "daily_budget"):
        values[name] = None if values[name] is None else f"{values[name]:.2f}"
    for name in ("starts_at", "ends_at"):
        values[name] = values[name].isoformat() if values[name] else None
    if campaign.pk:
        values["products"] = sorted(campaign.products.values_list("pk", flat=True))
        values["categories"] = sorted(campaign.categories.values_list("pk", flat=True))
        values["segments"] = sorted(campaign.segments.values_list("pk", flat=True))
    return values


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
