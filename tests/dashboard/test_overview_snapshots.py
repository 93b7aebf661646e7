"""The Overview from precomputed snapshots: same figures as computing it, served without touching events."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from shop_recs.dashboard import overview_snapshots, selectors
from shop_recs.dashboard.models import OverviewSnapshot
from shop_recs.stores.scoping import store_scope, unscoped
from tests.dashboard.conftest import LATEST

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("period", list(selectors.PERIODS))
def test_a_snapshot_holds_exactly_what_computing_gives(store, shop_data, period):
    with store_scope(store):
        live = selectors.overview(period)
        served = overview_snapshots.overview_page(store, period)
        again = overview_snapshots.overview_page(store, period)  # this one from the stored row
    assert served.data == live and again.data == live
    assert again.figures == served.figures and (not live.kpis.events or set(again.figures) == {"events", "funnel"})
    assert live.kpis.events > 0 and live.funnel and live.top_viewed


def _event_queries(queries) -> list[str]:
    return [q["sql"] for q in queries if "activity_event" in q["sql"]]


def test_the_page_reads_the_snapshot_not_the_events(store, shop_data, merchant, login, settings):
    settings.OVERVIEW_MAX_STALENESS_SECONDS = 300
    client = login(merchant)
    first = client.get("/s/alpha/?period=all").content.decode()
    assert 'data-kpi="revenue"' in first or "135.5" in first
    with CaptureQueriesContext(connection) as ctx:
        second = client.get("/s/alpha/?period=all").content.decode()
    assert "data-computed-at" in second
    # At most the "any event since?" probe (a primary-key range), never an aggregate over events.
    event_sql = _event_queries(ctx.captured_queries)
    assert len(event_sql) <= 1 and not any("COUNT" in sql.upper() or "SUM(" in sql.upper() for sql in event_sql)


def test_a_recent_snapshot_is_served_until_it_is_too_old(store, shop_data, make_event, settings):
    a1 = shop_data["products"][0]
    settings.OVERVIEW_MAX_STALENESS_SECONDS = 300
    with store_scope(store):
        before = overview_snapshots.overview_page(store, "all").data
    make_event(store, "view", customer=shop_data["customers"][0], product=a1, at=LATEST)
    with store_scope(store):
        # Taken seconds ago: served although an event arrived (beat recomputes it soon).
        assert overview_snapshots.overview_page(store, "all").data.kpis.events == before.kpis.events
        OverviewSnapshot.objects.update(computed_at=OverviewSnapshot.objects.get().computed_at - timedelta(hours=1))
        after = overview_snapshots.overview_page(store, "all")
        computed_at = after.computed_at
    assert after.data.kpis.events == before.kpis.events + 1
    with store_scope(store):
        assert OverviewSnapshot.objects.get().computed_at == computed_at


def test_an_old_snapshot_without_new_events_is_still_served(store, shop_data, settings):
    settings.OVERVIEW_MAX_STALENESS_SECONDS = 300
    with store_scope(store):
        overview_snapshots.overview_page(store, "30")
        OverviewSnapshot.objects.update(computed_at=OverviewSnapshot.objects.get().computed_at - timedelta(days=2))
        stamp = OverviewSnapshot.objects.get().computed_at
        served_at = overview_snapshots.overview_page(store, "30").computed_at
    assert served_at == stamp


def test_refresh_recomputes_only_stores_with_new_events(store, other_store, make_store, shop_data, make_event):
    empty = make_store("Empty", slug="empty")
    first = overview_snapshots.refresh_overviews()
    assert set(first["per_store"]) == {store.pk, other_store.pk}
    assert first["per_store"][store.pk] == {"periods": len(selectors.PERIODS)}
    assert overview_snapshots.refresh_overviews() == {"stores": 0, "per_store": {}}
    make_event(other_store, "view", customer=shop_data["beta_customer"], product=shop_data["beta_product"], at=LATEST)
    again = overview_snapshots.refresh_overviews()
    assert set(again["per_store"]) == {other_store.pk}
    with unscoped():
        assert not OverviewSnapshot.objects.filter(store=empty).exists()
        beta = OverviewSnapshot.objects.get(store=other_store, period_key="all")
    assert beta.payload["kpis"]["events"] == 6


def test_snapshots_stay_in_their_store(store, other_store, shop_data, merchant, login):
    overview_snapshots.refresh_overviews()
    html = login(merchant).get("/s/alpha/?period=all").content.decode()
    assert "Secret beta product" not in html and "999" not in html


def test_charts_are_kept_per_language_and_labels_follow_the_reader(store, shop_data, merchant, login, settings):
    """A snapshot computed by an English reader must not show English funnel labels to a Chinese one."""
    settings.OVERVIEW_MAX_STALENESS_SECONDS = 300
    client = login(merchant)
    client.get("/s/alpha/?period=30")
    client.cookies["django_language"] = "zh-hans"
    html = client.get("/s/alpha/?period=30").content.decode()
    assert "加入购物车" in html or "加购" in html
    with store_scope(store):
        figures = OverviewSnapshot.objects.get(period_key="30").payload["figures"]
    assert set(figures) == {"en", "zh-hans"}
    assert figures["en"]["funnel"] != figures["zh-hans"]["funnel"]
