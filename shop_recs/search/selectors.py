"""Reads for the search insights page. Call inside the store's scope (``store_view`` provides it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from django.db.models import Avg, Count, Max, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from shop_recs.activity.models import Event, EventType
from shop_recs.search.models import SearchQuery
from shop_recs.search.services import normalize_query

PERIODS: dict[str, int] = {"7d": 7, "30d": 30, "90d": 90}
DEFAULT_PERIOD = "30d"


@dataclass
class QueryStat:
    """One normalised query over the period."""

    normalized_query: str
    example: str  # one raw spelling merchants recognise
    searches: int
    zero_results: int
    avg_results: float
    last_seen: object


def period_start(period: str | None) -> tuple[str, date]:
    key = period if period in PERIODS else DEFAULT_PERIOD
    return key, timezone.localdate() - timedelta(days=PERIODS[key] - 1)


def _since(start: date):
    return SearchQuery.objects.filter(created_at__date__gte=start)


def top_searches(start: date, limit: int = 20) -> list[QueryStat]:
    rows = (
        _since(start)
        .values("normalized_query")
        .annotate(
            searches=Count("id"),
            zero=Count("id", filter=Q(n_results=0)),
            avg=Avg("n_results"),
            example=Max("query"),
            last=Max("created_at"),
        )
        .order_by("-searches", "normalized_query")[:limit]
    )
    return [_stat(r) for r in rows]


def zero_result_searches(start: date, limit: int = 50) -> list[QueryStat]:
    """Queries that found nothing, most frequent first: the merchandising to-do list."""
    rows = (
        _since(start)
        .filter(n_results=0)
        .values("normalized_query")
        .annotate(
            searches=Count("id"), zero=Count("id"), avg=Avg("n_results"), example=Max("query"), last=Max("created_at")
        )
        .order_by("-searches", "-last")[:limit]
    )
    return [_stat(r) for r in rows]


def _stat(row: dict) -> QueryStat:
    return QueryStat(
        normalized_query=row["normalized_query"],
        example=row["example"],
        searches=row["searches"],
        zero_results=row["zero"],
        avg_results=float(row["avg"] or 0.0),
        last_seen=row["last"],
    )


def queries_per_day(start: date, end: date | None = None) -> tuple[list[date], list[int], list[int]]:
    """Dense daily series ``(days, searches, zero-result searches)`` from ``start`` to ``end`` (today)."""
    end = end or timezone.localdate()
    rows = (
        _since(start)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(n=Count("id"), zero=Count("id", filter=Q(n_results=0)))
        .order_by("day")
    )
    by_day = {r["day"]: (r["n"], r["zero"]) for r in rows}
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    return days, [by_day.get(d, (0, 0))[0] for d in days], [by_day.get(d, (0, 0))[1] for d in days]


def totals(start: date) -> dict[str, int]:
    agg = _since(start).aggregate(
        searches=Count("id"),
        zero=Count("id", filter=Q(n_results=0)),
        corrected=Count("id", filter=~Q(corrected_query="")),
        distinct=Count("normalized_query", distinct=True),
    )
    return {k: int(v or 0) for k, v in agg.items()}


@dataclass
class ReportedQuery:
    """A query the shop reported in its own ``search`` events (its own search engine ran it)."""

    example: str
    searches: int
    last_seen: object
    matches_now: int | None = None  # what this platform's search finds for it today (filled by the view)


def reported_searches(start: date, limit: int = 20) -> tuple[int, list[ReportedQuery]]:
    """``(total, top queries)`` of the ``search`` events the shop sent since ``start``.

    Shops that run their own search send these events (``query`` set) and never call the search API,
    so the insights built on ``SearchQuery`` alone read "0 searches" for them. Spellings are grouped
    by the same normalisation as the search log; events carry no result count, so "found nothing"
    stays a figure of the search API's log only.
    """
    events = Event.objects.filter(event_type=EventType.SEARCH, timestamp__date__gte=start).exclude(query="")
    rows = events.values("query").annotate(n=Count("id"), last=Max("timestamp"))
    grouped: dict[str, ReportedQuery] = {}
    total = 0
    for row in rows.iterator(chunk_size=2000):
        total += row["n"]
        key = normalize_query(row["query"]) or row["query"].strip().lower()
        seen = grouped.get(key)
        if seen is None:
            grouped[key] = ReportedQuery(example=row["query"], searches=row["n"], last_seen=row["last"])
        else:
            seen.searches += row["n"]
            if row["last"] > seen.last_seen:
                seen.last_seen, seen.example = row["last"], row["query"]
    top = sorted(grouped.values(), key=lambda q: (-q.searches, q.example))[:limit]
    return total, top
