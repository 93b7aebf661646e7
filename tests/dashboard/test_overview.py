"""Overview numbers from the selectors, and the charts built from them, on a known dataset."""

from __future__ import annotations

from datetime import timedelta

import plotly.graph_objects as go
import pytest

from shop_recs.dashboard import charts, selectors
from shop_recs.stores.scoping import store_scope
from tests.dashboard.conftest import LATEST

pytestmark = pytest.mark.django_db


def test_period_is_anchored_at_the_stores_latest_event(store, shop_data):
    with store_scope(store):
        period = selectors.resolve_period("30")
    # Whole days: the window ends at midnight after the latest event (2024-03-11 00:00).
    assert period.end == LATEST.replace(hour=0, minute=0) + timedelta(days=1)
    assert period.start == period.end - timedelta(days=30)


def test_kpis_for_30_days(store, shop_data):
    with store_scope(store):
        k = selectors.kpis(selectors.resolve_period("30"))
    assert k.revenue == 35.5
    assert k.orders == 2
    assert k.aov == 17.75
    assert k.active_customers == 3
    assert k.events == 12


def test_kpis_for_all_time_include_old_purchase(store, shop_data):
    with store_scope(store):
        k = selectors.kpis(selectors.resolve_period("all"))
    assert k.revenue == 135.5
    assert k.orders == 3
    assert k.events == 13


def test_unknown_period_falls_back_to_default(store, shop_data):
    with store_scope(store):
        assert selectors.resolve_period("bogus").key == selectors.DEFAULT_PERIOD


def test_funnel_counts_distinct_customers_and_sessions(store, shop_data):
    with store_scope(store):
        steps = selectors.funnel(selectors.resolve_period("30"))
    assert [s.event_type for s in steps] == ["view", "add_to_cart", "purchase"]
    assert [s.actors for s in steps] == [4, 3, 2]
    assert steps[0].rate_from_previous is None
    assert steps[1].rate_from_previous == pytest.approx(0.75)
    assert steps[2].rate_from_previous == pytest.approx(2 / 3)
    assert steps[2].rate_from_first == pytest.approx(0.5)


def test_top_products(store, shop_data):
    with store_scope(store):
        period = selectors.resolve_period("30")
        by_views = selectors.top_products(period, by="views")
        by_revenue = selectors.top_products(period, by="revenue")
    assert [(p["sku"], p["views"]) for p in by_views] == [("A1", 3), ("A2", 2), ("A3", 1)]
    assert by_views[0]["carts"] == 2 and by_views[0]["units"] == 3
    assert [(p["sku"], p["units"], p["revenue"]) for p in by_revenue] == [("A1", 3, 30.0), ("A2", 1, 5.5)]


def test_events_per_day_and_dense_series(store, shop_data):
    with store_scope(store):
        rows = selectors.events_per_day(selectors.resolve_period("30"))
    days, series = selectors.daily_series(rows)
    assert days[0] == (LATEST - timedelta(days=3)).date() and days[-1] == LATEST.date()
    assert len(days) == 4
    assert series["view"] == [2, 0, 1, 3]
    assert series["purchase"] == [0, 2, 0, 1]
    assert sum(sum(v) for v in series.values()) == 12


def test_overview_of_an_empty_store(store):
    with store_scope(store):
        data = selectors.overview("30")
    assert data.is_empty
    assert data.kpis.revenue == 0 and data.kpis.orders == 0 and data.kpis.aov is None
    assert data.funnel == [] and data.top_viewed == []


def test_other_store_is_invisible_to_selectors(other_store, shop_data):
    with store_scope(other_store):
        k = selectors.kpis(selectors.resolve_period("all"))
    assert k.revenue == 999.0 * 3 * 5
    assert k.orders == 5


def test_events_chart_contains_the_daily_numbers(store, shop_data):
    with store_scope(store):
        days, series = selectors.daily_series(selectors.events_per_day(selectors.resolve_period("30")))
    fig = charts.events_per_day_figure(days, series, {"view": "View"})
    assert isinstance(fig, go.Figure)
    traces = {t.meta: t for t in fig.data}
    assert set(traces) == {"view", "add_to_cart", "purchase"}
    assert list(traces["view"].y) == [2, 0, 1, 3]
    assert traces["view"].name == "View"
    assert list(traces["purchase"].x) == [d.isoformat() for d in days]


def test_funnel_chart_contains_the_funnel_numbers(store, shop_data):
    with store_scope(store):
        steps = selectors.funnel(selectors.resolve_period("30"))
    fig = charts.funnel_figure([s.label for s in steps], [s.actors for s in steps])
    (trace,) = fig.data
    assert trace.type == "funnel"
    assert list(trace.x) == [4, 3, 2]
    assert list(trace.y) == ["View", "Add to cart", "Purchase"]
    # Round-trips through JSON the way the page embeds it.
    assert '"funnel"' in fig.to_json()


def test_customer_activity_chart(store, shop_data):
    c1 = shop_data["customers"][0]
    with store_scope(store):
        days, series = selectors.daily_series(selectors.customer_activity_per_day(c1))
    fig = charts.customer_activity_figure(days, series)
    totals = {t.meta: sum(t.y) for t in fig.data}
    assert totals == {"view": 2, "add_to_cart": 1, "purchase": 2}


def test_overview_page_shows_the_numbers(store, merchant, shop_data, login):
    client = login(merchant)
    response = client.get("/s/alpha/?period=30")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-kpi="revenue">$35.50<' in html  # the store's currency as English writes it
    assert 'data-kpi="orders">2<' in html
    assert 'data-kpi="active_customers">3<' in html
    assert "Blue mug" in html
    assert 'id="fig-events"' in html and 'id="fig-funnel"' in html
    assert "vendor/plotly/plotly.min.js" in html
    assert "Secret beta product" not in html
    assert "cdn" not in html.lower()


def test_overview_page_for_an_empty_store(store, merchant, login):
    response = login(merchant).get("/s/alpha/")
    assert response.status_code == 200
    assert "Nothing to show yet" in response.content.decode()
    assert "plotly.min.js" not in response.content.decode()
