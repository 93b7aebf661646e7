"""What every chart does in a real browser (static/js/charts.js): Chinese dates, whole-day axes for one
day of data, "not enough data yet" instead of empty axes, and a text summary for screen readers; and
the Segments page's charts (every segment named, no overlap chart of clusters that cannot overlap)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from analytics import services as analytics_services
from analytics.models import Segment
from shop_recs.activity.models import Customer, Event
from shop_recs.stores.scoping import unscoped
from tests.browser.test_dashboard_browser import browser_page, build_demo_activity  # noqa: F401 - fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _login(page, live_server, next_url: str) -> None:
    page.goto(f"{live_server.url}/accounts/login/?next={next_url}")
    page.fill("#id_username", "merchant")
    page.fill("#id_password", "pw-123456!")
    page.click("button[type=submit].btn-primary")
    page.wait_for_url(f"{live_server.url}{next_url}")


def test_chinese_overview_charts_use_the_chinese_locale_and_describe_themselves(
    live_server,
    browser_page,  # noqa: F811 - the imported Chromium fixture
    store,
    make_user,
):
    make_user("merchant", store)
    build_demo_activity(store)
    page = browser_page
    page.context.add_cookies([{"name": "django_language", "value": "zh-hans", "url": live_server.url}])
    _login(page, live_server, "/s/alpha/")
    chart = page.locator("[data-figure='fig-events']")
    page.wait_for_selector("[data-figure='fig-events'].js-plotly-plot svg.main-svg", timeout=20_000)
    assert chart.get_attribute("role") == "img"
    label = chart.get_attribute("aria-label")
    assert "个数据点" in label and "从" in label, label
    ticks = page.locator("[data-figure='fig-events'] g.xtick text").all_text_contents()
    assert ticks and any("月" in t for t in ticks), ticks


def test_one_day_of_data_reads_in_whole_days_and_an_empty_chart_says_so(
    live_server,
    browser_page,  # noqa: F811 - the imported Chromium fixture
    store,
    make_user,
):
    make_user("merchant", store)
    day = datetime(2024, 5, 31, 9, 0, tzinfo=UTC)
    with unscoped():
        customer = Customer.objects.create(store=store, external_id="c1")
        # Searches only: the events chart has one day, the view → cart → purchase funnel is all zeros.
        Event.objects.bulk_create(
            Event(
                store=store, customer=customer, event_type="search", query="mug", timestamp=day + timedelta(minutes=i)
            )
            for i in range(5)
        )
    page = browser_page
    _login(page, live_server, "/s/alpha/")
    page.wait_for_selector("[data-figure='fig-events'].js-plotly-plot svg.main-svg", timeout=20_000)
    ticks = page.locator("[data-figure='fig-events'] g.xtick text").all_text_contents()
    assert ticks and not any(":" in t for t in ticks), ticks  # no "23:59:59.9996"
    assert "2024-05-31" in ticks, ticks
    assert page.locator("[data-figure='fig-funnel']").count() == 0
    assert "Not enough data yet." in page.locator("[data-chart-empty]").all_inner_texts()


def test_segment_charts_label_every_row_and_skip_the_overlap_of_disjoint_clusters(
    live_server,
    browser_page,  # noqa: F811 - the imported Chromium fixture
    store,
    make_user,
):
    """The "What sets segments apart" chart names every segment it draws (it showed 5 rows with 3 labels), and
    automatic segments alone get no overlap chart: they partition the customers, so it was a diagonal."""
    make_user("merchant", store)
    build_demo_activity(store)
    # Profiles, then the automatic segments, computed here and now (not in a pool the live server may have started).
    analytics_services.run_profiles(analytics_services.start_profile_run(store, enqueue=False).pk)
    with unscoped():
        names = list(Segment.objects.filter(store=store, kind=Segment.Kind.AUTO).values_list("name", flat=True))
    assert len(names) >= 4, names
    page = browser_page
    _login(page, live_server, "/s/alpha/insights/segments/")
    page.wait_for_selector("[data-figure='fig-centroids'].js-plotly-plot svg.main-svg", timeout=20_000)
    labels = page.locator("[data-figure='fig-centroids'] g.ytick text").all_text_contents()
    assert sorted(labels) == sorted(names), labels
    assert page.locator("[data-figure='fig-overlap']").count() == 0
    assert "never overlap" in page.locator("#segment-overlap").inner_text()
    page.set_viewport_size({"width": 390, "height": 844})  # the narrowest page still names every row
    page.wait_for_timeout(150)  # plotly's responsive relayout after the resize event
    assert sorted(page.locator("[data-figure='fig-centroids'] g.ytick text").all_text_contents()) == sorted(names)

    # With a rule segment the overlap says something: how that segment spreads across the clusters.
    with unscoped():
        Segment.objects.create(
            store=store, name="Buyers", kind=Segment.Kind.RULE, rules={"field": "frequency", "op": ">=", "value": 1}
        )
    page.set_viewport_size({"width": 1366, "height": 768})
    page.reload()
    page.wait_for_selector("[data-figure='fig-overlap'].js-plotly-plot svg.main-svg", timeout=20_000)
    rows = page.locator("[data-figure='fig-overlap'] g.ytick text").all_text_contents()
    columns = page.locator("[data-figure='fig-overlap'] g.xtick text").all_text_contents()
    assert rows == ["Buyers"], rows
    assert sorted(columns) == sorted([*names, "Buyers"]), columns


def test_online_metrics_without_data_say_so_instead_of_drawing_empty_axes(
    live_server,
    browser_page,  # noqa: F811 - the imported Chromium fixture
    store,
    make_user,
):
    """The online metrics chart of a store that served nothing yet spanned -1 to 6 on empty axes."""
    make_user("merchant", store)
    page = browser_page
    _login(page, live_server, "/s/alpha/experiments/")
    page.wait_for_selector("p[data-chart-empty]")
    assert page.locator("[data-figure='fig-daily']").count() == 0
    assert page.locator(".js-plotly-plot").count() == 0
    assert page.locator("p[data-chart-empty]").first.inner_text() == "Not enough data yet."
