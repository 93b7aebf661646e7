"""Read-side queries behind the dashboard's Overview and detail pages.

Every function runs a handful of aggregate queries (``TruncDate``/``Count``/``Sum`` in the database)
and returns plain Python data, so charts and templates never loop over raw events. They must be
called inside ``store_scope(store)``: the models' scoped managers filter to the active store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.db.models import Count, ExpressionWrapper, F, FloatField, Max, Min, Q, Sum, Value
from django.db.models.fields import CharField
from django.db.models.functions import Cast, Coalesce, Concat, TruncDate
from django.utils import timezone

from shop_recs.activity.models import Customer, Event, EventType
from shop_recs.catalog.validation import readable_events_q

# Selectable Overview periods, in days; ``None`` means all time.
PERIODS: dict[str, int | None] = {"7": 7, "30": 30, "90": 90, "all": None}
DEFAULT_PERIOD = "30"

FUNNEL_STEPS: tuple[str, ...] = (EventType.VIEW, EventType.ADD_TO_CART, EventType.PURCHASE)

# Quantity is optional on purchase events: a purchase without one counts as a single unit.
_QTY = Coalesce(F("quantity"), Value(1))
_LINE_REVENUE = ExpressionWrapper(Coalesce(F("value"), Value(0.0)) * _QTY, output_field=FloatField())
# A funnel "actor" is the known customer, or else the anonymous session ("s:" keeps the two apart).
_ACTOR = Coalesce(
    Cast("customer_id", output_field=CharField()),
    Concat(Value("s:"), F("session_id"), output_field=CharField()),
    output_field=CharField(),
)


@dataclass(frozen=True)
class Period:
    """A half-open time window ``[start, end)``; ``start`` is ``None`` for "all time"."""

    key: str
    start: datetime | None
    end: datetime | None

    def filter(self, qs):
        # Always within the readable window: a row stored before validation with a year-1 timestamp
        # or a 1e300 value would fail the whole page ("all time" included), so it is skipped.
        qs = qs.filter(readable_events_q())
        if self.start is not None:
            qs = qs.filter(timestamp__gte=self.start)
        if self.end is not None:
            qs = qs.filter(timestamp__lt=self.end)
        return qs


@dataclass
class FunnelStep:
    event_type: str
    label: str
    actors: int
    rate_from_previous: float | None  # share of the previous step's actors, 0..1
    rate_from_first: float | None


@dataclass
class Kpis:
    events: int
    active_customers: int
    revenue: float
    orders: int
    aov: float | None
    first_event: datetime | None = None
    last_event: datetime | None = None


@dataclass
class Overview:
    period: Period
    kpis: Kpis
    daily: list[dict] = field(default_factory=list)
    funnel: list[FunnelStep] = field(default_factory=list)
    top_viewed: list[dict] = field(default_factory=list)
    top_purchased: list[dict] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return self.kpis.events == 0


def resolve_period(key: str | None) -> Period:
    """The Overview window, anchored at the store's latest event so imported history still shows.

    Anchoring at "now" would show an empty dashboard for a store whose demo data is a year old.
    """
    if key not in PERIODS:
        key = DEFAULT_PERIOD
    latest = Event.objects.filter(readable_events_q()).aggregate(latest=Max("timestamp"))["latest"]
    days = PERIODS[key]
    if latest is None or days is None:
        return Period(key=key, start=None, end=None)
    # Whole days: the window ends after the latest event's day and covers ``days`` calendar days.
    end = timezone.localtime(latest).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    start = end - timedelta(days=days)
    return Period(key=key, start=start, end=end)


def kpis(period: Period) -> Kpis:
    """Events, active customers, revenue (sum of value × quantity), orders and AOV in one query."""
    qs = period.filter(Event.objects.all())
    purchase = Q(event_type=EventType.PURCHASE)
    agg = qs.aggregate(
        events=Count("id"),
        active_customers=Count("customer_id", distinct=True),
        revenue=Sum(_LINE_REVENUE, filter=purchase),
        # An order is a distinct order_id; a purchase with no order id is an order on its own.
        orders_with_id=Count("order_id", distinct=True, filter=purchase & ~Q(order_id="")),
        orders_without_id=Count("id", filter=purchase & Q(order_id="")),
        first_event=Min("timestamp"),
        last_event=Max("timestamp"),
    )
    revenue = round(float(agg["revenue"] or 0.0), 2)
    orders = agg["orders_with_id"] + agg["orders_without_id"]
    return Kpis(
        events=agg["events"],
        active_customers=agg["active_customers"],
        revenue=revenue,
        orders=orders,
        aov=round(revenue / orders, 2) if orders else None,
        first_event=agg["first_event"],
        last_event=agg["last_event"],
    )


def events_per_day(period: Period) -> list[dict]:
    """``[{"day": date, "event_type": str, "n": int}, ...]`` ordered by day, one query."""
    qs = period.filter(Event.objects.all())
    rows = (
        qs.annotate(day=TruncDate("timestamp"))
        .values("day", "event_type")
        .annotate(n=Count("id"))
        .order_by("day", "event_type")
    )
    return [{"day": r["day"], "event_type": r["event_type"], "n": r["n"]} for r in rows]


def funnel(period: Period) -> list[FunnelStep]:
    """Distinct actors (customer, or session when anonymous) at view → cart → purchase, one query.

    Each step counts everyone who did that step in the window; the rates compare consecutive steps.
    """
    qs = period.filter(Event.objects.all())
    agg = qs.aggregate(**{step: Count(_ACTOR, distinct=True, filter=Q(event_type=step)) for step in FUNNEL_STEPS})
    labels = dict(EventType.choices)
    steps: list[FunnelStep] = []
    first = agg[FUNNEL_STEPS[0]]
    previous: int | None = None
    for step in FUNNEL_STEPS:
        n = agg[step]
        steps.append(
            FunnelStep(
                event_type=step,
                label=str(labels[step]),
                actors=n,
                rate_from_previous=(n / previous) if previous else None,
                rate_from_first=(n / first) if first else None,
            )
        )
        previous = n
    return steps


def top_products(period: Period, *, by: str = "views", limit: int = 10) -> list[dict]:
    """Top products by ``views`` or by ``revenue``: sku, title, views, carts, purchases (units), revenue."""
    if by not in {"views", "revenue"}:
        raise ValueError(f"unknown ranking {by!r}")
    qs = period.filter(Event.objects.filter(product__isnull=False))
    purchase = Q(event_type=EventType.PURCHASE)
    rows = (
        qs.values("product_id", "product__sku", "product__title")
        .annotate(
            views=Count("id", filter=Q(event_type=EventType.VIEW)),
            carts=Count("id", filter=Q(event_type=EventType.ADD_TO_CART)),
            units=Coalesce(Sum(_QTY, filter=purchase), Value(0)),
            revenue=Coalesce(Sum(_LINE_REVENUE, filter=purchase), Value(0.0)),
        )
        .filter(**({"views__gt": 0} if by == "views" else {"units__gt": 0}))
        .order_by(*(("-views", "-revenue") if by == "views" else ("-revenue", "-units")), "product__sku")[:limit]
    )
    return [
        {
            "product_id": r["product_id"],
            "sku": r["product__sku"],
            "title": r["product__title"],
            "views": r["views"],
            "carts": r["carts"],
            "units": r["units"],
            "revenue": round(float(r["revenue"]), 2),
        }
        for r in rows
    ]


def overview(period_key: str | None) -> Overview:
    """Everything the Overview page shows, for the active store scope."""
    period = resolve_period(period_key)
    figures = kpis(period)
    if figures.events == 0:
        return Overview(period=period, kpis=figures)
    return Overview(
        period=period,
        kpis=figures,
        daily=events_per_day(period),
        funnel=funnel(period),
        top_viewed=top_products(period, by="views"),
        top_purchased=top_products(period, by="revenue"),
    )


def event_type_counts(qs) -> dict[str, int]:
    """``{event_type: n}`` for an event queryset (a product's or a customer's), one GROUP BY."""
    rows = qs.order_by().values("event_type").annotate(n=Count("id"))
    return {r["event_type"]: r["n"] for r in rows}


def customer_activity_per_day(customer: Customer) -> list[dict]:
    """One customer's events per day and type, for the small activity chart on the profile page."""
    rows = (
        Event.objects.filter(readable_events_q(), customer=customer)
        .annotate(day=TruncDate("timestamp"))
        .values("day", "event_type")
        .annotate(n=Count("id"))
        .order_by("day", "event_type")
    )
    return [{"day": r["day"], "event_type": r["event_type"], "n": r["n"]} for r in rows]


def daily_series(rows: list[dict]) -> tuple[list[date], dict[str, list[int]]]:
    """Pivot ``events_per_day`` rows to one dense series per type (missing days are zero)."""
    if not rows:
        return [], {}
    first, last = rows[0]["day"], rows[-1]["day"]
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    index = {d: i for i, d in enumerate(days)}
    series: dict[str, list[int]] = {}
    for r in rows:
        series.setdefault(r["event_type"], [0] * len(days))[index[r["day"]]] += r["n"]
    return days, series


def recent_events(events, limit: int = 20):
    """The latest ``limit`` of an event queryset (a product's or a customer's) that can be shown.

    Rows outside ``readable_events_q`` (a year-1 timestamp, a 1e300 value stored before validation)
    are left out of the list, so the page renders; they still count in ``event_type_counts``.
    """
    return events.filter(readable_events_q()).order_by("-timestamp")[:limit]


# --- profiles and segments (analytics app) --------------------------------------------------------
