"""The Overview from precomputed snapshots: the landing page reads one row instead of every event.

The Overview's figures are not additive over days (distinct customers, funnel actors, top products),
so instead of daily partial sums the whole page is precomputed per store and period
(:class:`~shop_recs.dashboard.models.OverviewSnapshot`):

* beat's ``refresh-overviews`` recomputes the snapshots of every store that has had events since its
  snapshots were taken (``OVERVIEW_REFRESH_SECONDS``), so in a deployment the page never computes;
* the page serves a snapshot while it is fresh: no event since, or taken less than
  ``OVERVIEW_MAX_STALENESS_SECONDS`` ago (the page says when). Otherwise, and the first time, it
  computes once and stores the result (the embedded demo has no beat).

"Events since" is decided by event ids, not times: each snapshot keeps the highest event id of the
installation when it was computed, and a store with a newer event is one primary-key range probe away.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max, Min
from django.utils import timezone, translation
from django.utils.dateparse import parse_date, parse_datetime

from shop_recs.activity.models import Event, EventType
from shop_recs.dashboard import charts, selectors
from shop_recs.dashboard.models import OverviewSnapshot
from shop_recs.platform.charts import figure_json
from shop_recs.stores.models import Store
from shop_recs.stores.scoping import store_scope, unscoped

__all__ = ["OverviewPage", "overview_page", "refresh_store", "refresh_overviews"]


def _dt(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _to_payload(data: selectors.Overview) -> dict[str, Any]:
    p, k = data.period, data.kpis
    return {
        "period": {"key": p.key, "start": _dt(p.start), "end": _dt(p.end)},
        "kpis": {
            "events": k.events,
            "active_customers": k.active_customers,
            "revenue": k.revenue,
            "orders": k.orders,
            "aov": k.aov,
            "first_event": _dt(k.first_event),
            "last_event": _dt(k.last_event),
        },
        "daily": [{**row, "day": row["day"].isoformat()} for row in data.daily],
        "funnel": [vars(step) for step in data.funnel],
        "top_viewed": data.top_viewed,
        "top_purchased": data.top_purchased,
    }


def _from_payload(payload: dict[str, Any]) -> selectors.Overview:
    p, k = payload["period"], payload["kpis"]

    def dt(value: str | None) -> datetime | None:
        return parse_datetime(value) if value else None

    labels = dict(EventType.choices)

    return selectors.Overview(
        period=selectors.Period(key=p["key"], start=dt(p["start"]), end=dt(p["end"])),
        kpis=selectors.Kpis(**{**k, "first_event": dt(k["first_event"]), "last_event": dt(k["last_event"])}),
        daily=[{**row, "day": parse_date(row["day"])} for row in payload["daily"]],
        # Labels in the reader's language, not in the language of whoever computed the snapshot.
        funnel=[
            selectors.FunnelStep(**{**step, "label": str(labels[step["event_type"]])}) for step in payload["funnel"]
        ],
        top_viewed=payload["top_viewed"],
        top_purchased=payload["top_purchased"],
    )


def _installation_max_event_id() -> int:
    with unscoped():
        # all stores: the newest event id of the installation, the mark "events since" is measured from
        return Event.all_stores.aggregate(top=Max("id"))["top"] or 0


def _compute(store: Store, period_key: str) -> OverviewSnapshot:
    """Compute and save one snapshot (inside the store's scope)."""
    # Taken before computing: an event written meanwhile makes the snapshot stale, never missed.
    source = _installation_max_event_id()
    started = time.perf_counter()
    data = selectors.overview(period_key)
    values = {
        "payload": _to_payload(data),
        "source_max_event_id": source,
        "computed_at": timezone.now(),
        "compute_seconds": time.perf_counter() - started,
    }
    try:
        with transaction.atomic():
            snapshot, _ = OverviewSnapshot.objects.update_or_create(
                store=store, period_key=data.period.key, defaults=values
            )
    except IntegrityError:  # another process created it between our read and insert: update theirs
        OverviewSnapshot.objects.filter(store=store, period_key=data.period.key).update(**values)
        snapshot = OverviewSnapshot.objects.get(store=store, period_key=data.period.key)
    return snapshot


def _has_events_since(snapshot: OverviewSnapshot) -> bool:
    return Event.objects.filter(pk__gt=snapshot.source_max_event_id).exists()


@dataclass
class OverviewPage:
    """What the Overview page shows: the figures, when they were computed, and the charts' JSON."""

    data: selectors.Overview
    computed_at: datetime
    figures: dict[str, Any]


def _fresh_snapshot(store: Store, key: str) -> OverviewSnapshot:
    snapshot = OverviewSnapshot.objects.filter(period_key=key).first()
    if snapshot is not None:
        age = timezone.now() - snapshot.computed_at
        if age < timedelta(seconds=settings.OVERVIEW_MAX_STALENESS_SECONDS) or not _has_events_since(snapshot):
            return snapshot
    return _compute(store, key)


def _build_figures(data: selectors.Overview) -> dict[str, Any]:
    if data.is_empty:
        return {}
    labels = {value: str(label) for value, label in EventType.choices}
    days, series = selectors.daily_series(data.daily)
    events = charts.events_per_day_figure(days, series, labels)
    funnel = charts.funnel_figure([s.label for s in data.funnel], [s.actors for s in data.funnel])
    return {"events": figure_json(events), "funnel": figure_json(funnel)}


def overview_page(store: Store, period_key: str | None) -> OverviewPage:
    """The store's Overview for ``period_key`` (call inside the store scope).

    The charts are kept in the snapshot too, per language (their labels are the reader's): building a
    plotly figure costs more than the rest of the page, so it is done once per snapshot and language.
    """
    key = period_key if period_key in selectors.PERIODS else selectors.DEFAULT_PERIOD
    snapshot = _fresh_snapshot(store, key)
    data = _from_payload(snapshot.payload)
    language = translation.get_language() or settings.LANGUAGE_CODE
    figures = (snapshot.payload.get("figures") or {}).get(language)
    if figures is None:
        figures = _build_figures(data)
        payload = {**snapshot.payload, "figures": {**(snapshot.payload.get("figures") or {}), language: figures}}
        # Only onto the snapshot it was built from: a newer one (recomputed meanwhile) has other figures.
        OverviewSnapshot.objects.filter(pk=snapshot.pk, computed_at=snapshot.computed_at).update(payload=payload)
    return OverviewPage(data, snapshot.computed_at, figures)


def refresh_store(store: Store) -> int:
    """Recompute every period's snapshot of ``store``; returns how many were written."""
    with store_scope(store):
        for key in selectors.PERIODS:
            _compute(store, key)
    return len(selectors.PERIODS)


def _stores_to_refresh() -> list[int]:
    """Stores with events newer than their oldest snapshot, or with events and no snapshot yet."""
    # all stores: the periodic job looks for every store with new events
    with unscoped():
        oldest = dict(
            OverviewSnapshot.objects.values("store_id")
            .annotate(source=Min("source_max_event_id"))
            .values_list("store_id", "source")
        )
        due: list[int] = []
        if oldest:
            # all stores: one primary-key range scan over the events written since the oldest snapshot
            since = Event.all_stores.filter(pk__gt=min(oldest.values()))
            newer = set(since.values_list("store_id", flat=True).distinct())
            due += [sid for sid in newer if sid in oldest and _store_newer(sid, oldest[sid])]
        for sid in Store.objects.exclude(pk__in=list(oldest)).values_list("pk", flat=True):
            if Event.all_stores.filter(store_id=sid).exists():
                due.append(sid)
    return sorted(due)


def _store_newer(store_id: int, source: int) -> bool:
    return Event.all_stores.filter(store_id=store_id, pk__gt=source).exists()


def refresh_overviews() -> dict[str, Any]:
    """Periodic: recompute the snapshots of every store that has had events since (beat job)."""
    per_store: dict[int, dict[str, int]] = {}
    for store in Store.objects.filter(pk__in=_stores_to_refresh()):
        per_store[store.pk] = {"periods": refresh_store(store)}
    return {"stores": len(per_store), "per_store": per_store}
