"""Ad reads: purchase attribution and the campaign report (call inside ``store_scope``).

Attribution rules (also in docs/ads.md):

* A purchase event counts for a campaign when the same customer had a *touch* of that campaign
  before it: a click (``attribution_basis = click``, the default) or an impression (``impression``),
  and the purchase happened within the window after the touch (the campaign's
  ``attribution_window_days``, else ``ADS_ATTRIBUTION_WINDOW_DAYS``, default 7 days).
* Only purchases of the promoted products (explicit products plus the promoted categories' products)
  count; a campaign that promotes nothing specific (a brand creative) counts any product.
* A purchase whose ``context.ad_impression_id`` names one of the campaign's impressions counts for
  it regardless of product and window (the shop told us explicitly).
* Each purchase event counts at most once per campaign, credited to the latest touch before it
  (last touch). Revenue = ``value`` (unit price) x ``quantity`` (1 when missing).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from shop_recs.activity.models import Event, EventType
from shop_recs.ads.eligibility import paced_ppm, promoted_product_ids
from shop_recs.ads.models import MICROS, AttributionBasis, Campaign, Impression, PricingModel, from_micros, to_micros


def window_of(campaign: Campaign) -> timedelta:
    days = campaign.attribution_window_days
    if days is None:
        days = settings.ADS_ATTRIBUTION_WINDOW_DAYS
    return timedelta(days=days)


@dataclass(frozen=True)
class Conversion:
    """One attributed purchase event."""

    event_id: int
    impression_id: str
    customer_id: int
    product_id: int | None
    revenue: float
    at: datetime
    via: str  # "click", "impression" or "context"


def _revenue(value: float | None, quantity: int | None) -> float:
    return float(value or 0.0) * float(quantity if quantity is not None else 1)


def attributed_conversions(campaign: Campaign, until: datetime | None = None) -> list[Conversion]:
    """Every purchase attributed to ``campaign`` (see the module docstring for the rules)."""

    until = until or timezone.now()
    window = window_of(campaign)
    by_click = campaign.attribution_basis == AttributionBasis.CLICK
    imps = Impression.objects.filter(campaign=campaign)
    touches_qs = imps.filter(customer__isnull=False)
    if by_click:
        touches_qs = touches_qs.filter(clicked_at__isnull=False)
    touches: dict[int, list[tuple[datetime, str]]] = defaultdict(list)
    for cust, served, clicked, iid in touches_qs.values_list("customer_id", "served_at", "clicked_at", "impression_id"):
        touches[cust].append((clicked if by_click else served, str(iid)))
    for lst in touches.values():
        lst.sort()
    out: dict[int, Conversion] = {}
    purchases = Event.objects.filter(event_type=EventType.PURCHASE, timestamp__lte=until)
    fields = ("pk", "customer_id", "product_id", "value", "quantity", "timestamp")
    # 1. Explicit: context.ad_impression_id names one of this campaign's impressions.
    explicit = purchases.filter(context__has_key="ad_impression_id", timestamp__gte=campaign.starts_at)
    own = {str(i) for i in imps.values_list("impression_id", flat=True)} if explicit.exists() else set()
    if own:
        for row in explicit.values_list(*fields, "context"):
            iid = str((row[6] or {}).get("ad_impression_id", ""))
            if iid in own and row[1] is not None:
                out[row[0]] = Conversion(row[0], iid, row[1], row[2], _revenue(row[3], row[4]), row[5], "context")
    # 2. Touch-based, last touch within the window.
    if touches:
        first = min(lst[0][0] for lst in touches.values())
        last = max(lst[-1][0] for lst in touches.values())
        qs = purchases.filter(customer_id__in=list(touches), timestamp__gte=first, timestamp__lte=last + window)
        promoted = promoted_product_ids(campaign)
        if promoted:
            qs = qs.filter(product_id__in=list(promoted))
        via = "click" if by_click else "impression"
        for pk, cust, prod, value, qty, ts in qs.values_list(*fields):
            if pk in out:
                continue
            lst = touches[cust]
            i = bisect.bisect_right(lst, (ts, "\uffff")) - 1
            if i >= 0 and ts - lst[i][0] <= window:
                out[pk] = Conversion(pk, lst[i][1], cust, prod, _revenue(value, qty), ts, via)
    return sorted(out.values(), key=lambda c: (c.at, c.event_id))


def _days(start: date, end: date) -> list[date]:
    n = max(0, (end - start).days) + 1
    return [start + timedelta(days=i) for i in range(min(n, 400))]


#: Below this many impressions, or this many days with activity, the report's charts say "not enough
#: data yet" instead of drawing a line through one or two points.
CHART_MIN_IMPRESSIONS = 20
CHART_MIN_DAYS = 2


def _ratio(num: Decimal | float, den: Decimal | float | int) -> Decimal | None:
    return None if not den else Decimal(str(num)) / Decimal(str(den))


def money_kpis(spend: Decimal, impressions: int, clicks: int, revenue: float) -> dict:
    """CTR, CPC, CPM and return on ad spend from the totals (None where the denominator is 0)."""
    return {
        "ctr": clicks / impressions if impressions else None,
        "cpc": _ratio(spend, clicks),
        "cpm": None if not impressions else Decimal(spend) * 1000 / impressions,
        # Attributed revenue per unit of spend (2.5 = 250 %); None before anything was spent.
        "roas": _ratio(Decimal(str(round(revenue, 2))), spend),
    }


def _daily_spend(campaign: Campaign, imps) -> tuple[dict[date, int], dict[date, int], dict[date, int]]:
    """(impressions, clicks, spend in micro-units) per day: CPM spend on the impression's day, CPC on the click's."""
    served = {
        row["d"]: row
        for row in imps.annotate(d=TruncDate("served_at")).values("d").annotate(n=Count("pk"), cost=Sum("cost_micros"))
    }
    clicked = {
        row["d"]: row
        for row in imps.filter(clicked_at__isnull=False)
        .annotate(d=TruncDate("clicked_at"))
        .values("d")
        .annotate(n=Count("pk"), cost=Sum("cost_micros"))
    }
    spend_rows = clicked if campaign.pricing_model == PricingModel.CPC else served
    return (
        {d: r["n"] for d, r in served.items()},
        {d: r["n"] for d, r in clicked.items()},
        {d: int(r["cost"] or 0) for d, r in spend_rows.items()},
    )


def _pacing(campaign: Campaign, now: datetime) -> dict:
    duration = (campaign.ends_at - campaign.starts_at).total_seconds()
    elapsed = min(max((now - campaign.starts_at).total_seconds(), 0.0), duration)
    time_share = elapsed / duration if duration > 0 else 1.0
    budget_share = float(campaign.spend / campaign.budget) if campaign.budget else 0.0
    today = campaign.day_spend_micros if campaign.spend_day == now.date() else 0
    daily = campaign.daily_budget
    allowed = None
    if daily is not None:
        allowed = from_micros(round(to_micros(daily) * paced_ppm(now, settings.ADS_PACING_TOLERANCE) / MICROS))
    return {
        "budget": campaign.budget,
        "spend": campaign.spend,
        "remaining": campaign.remaining,
        "served": campaign.impressions_served,
        "budget_share": budget_share,
        "time_share": time_share,
        # >1: spending faster than an even pace over the flight; <1: behind.
        "ratio": budget_share / time_share if time_share > 0 else None,
        "daily_budget": daily,
        "today_spend": from_micros(today),
        "paced_allowed": allowed,
        "over_paced": allowed is not None and from_micros(today + campaign.cost_micros) > allowed,
    }


def campaign_report(campaign: Campaign, now: datetime | None = None) -> dict:
    """KPIs (with spend, CPC, CPM and ROAS), daily series and pacing for the campaign report page."""
    now = now or timezone.now()
    imps = Impression.objects.filter(campaign=campaign)
    totals = imps.aggregate(
        impressions=Count("pk"),
        reach=Count("customer_id", distinct=True),
        clicks=Count("pk", filter=Q(clicked_at__isnull=False)),
    )
    conversions = attributed_conversions(campaign, until=now)
    revenue = sum(c.revenue for c in conversions)
    daily_imps, daily_clicks, daily_spend = _daily_spend(campaign, imps)
    daily_conv: dict[date, int] = defaultdict(int)
    daily_rev: dict[date, float] = defaultdict(float)
    for c in conversions:
        daily_conv[c.at.date()] += 1
        daily_rev[c.at.date()] += c.revenue
    end_day = min(now, campaign.ends_at).date()
    observed = [*daily_imps, *daily_clicks, *daily_conv]
    start_day = min([campaign.starts_at.date(), *observed]) if observed else campaign.starts_at.date()
    end_day = max([end_day, *observed]) if observed else end_day
    days = _days(start_day, end_day) if start_day <= end_day else []
    impressions = totals["impressions"]
    spend = campaign.spend
    cumulative, acc = [], 0
    for d in days:
        acc += daily_spend.get(d, 0)
        cumulative.append(float(from_micros(acc)))
    active_days = len(set(daily_imps) | set(daily_clicks))
    return {
        "impressions": impressions,
        "reach": totals["reach"],
        "clicks": totals["clicks"],
        "spend": spend,
        **money_kpis(spend, impressions, totals["clicks"], revenue),
        "conversions": len(conversions),
        "revenue": round(revenue, 2),
        "conversion_rate": len(conversions) / totals["clicks"] if totals["clicks"] else None,
        "window_days": window_of(campaign).days,
        "pacing": _pacing(campaign, now),
        "days": days,
        "enough_data": impressions >= CHART_MIN_IMPRESSIONS and active_days >= CHART_MIN_DAYS,
        "series": {
            "impressions": [daily_imps.get(d, 0) for d in days],
            "clicks": [daily_clicks.get(d, 0) for d in days],
            "conversions": [daily_conv.get(d, 0) for d in days],
            "revenue": [round(daily_rev.get(d, 0.0), 2) for d in days],
            "spend": [float(from_micros(daily_spend.get(d, 0))) for d in days],
            "cumulative": cumulative,
        },
        "recent_conversions": conversions[-10:][::-1],
    }


def campaign_rows(now: datetime | None = None) -> list[dict]:
    """The campaign list: every campaign with impressions, reach, clicks, CTR, spend, CPC, CPM and ROAS.

    Three queries: campaigns, impression stats, and the purchases attribution needs per campaign
    (``attributed_conversions``; one per campaign that has impressions, the list is short).
    """
    now = now or timezone.now()
    campaigns = list(Campaign.objects.all())
    stats = {
        row["campaign_id"]: row
        for row in Impression.objects.filter(campaign__in=campaigns)
        .values("campaign_id")
        .annotate(
            impressions=Count("pk"),
            reach=Count("customer_id", distinct=True),
            clicks=Count("pk", filter=Q(clicked_at__isnull=False)),
        )
    }
    rows = []
    for c in campaigns:
        s = stats.get(c.pk, {})
        n = s.get("impressions", 0)
        revenue = sum(x.revenue for x in attributed_conversions(c, until=now)) if n else 0.0
        rows.append(
            {
                "campaign": c,
                "impressions": n,
                "reach": s.get("reach", 0),
                "clicks": s.get("clicks", 0),
                "spend": c.spend,
                "revenue": round(revenue, 2),
                **money_kpis(c.spend, n, s.get("clicks", 0), revenue),
                "budget_share": float(c.spend / c.budget) if c.budget else 0.0,
            }
        )
    return rows
