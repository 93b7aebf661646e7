"""End to end in a real browser: log in, open the overview, see plotly charts drawn locally.

Drives Debian's chromium through Playwright's sync API (no ``playwright install``). Without
/usr/bin/chromium it skips locally and fails under CI=true.
"""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from shop_recs.activity.models import Customer, Event
from shop_recs.catalog.models import Product
from shop_recs.stores.scoping import unscoped
from tests.conftest import skip_or_fail

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
SCREENSHOT = Path(os.environ.get("DASHBOARD_SCREENSHOT", "/tmp/shop_recs_overview.png"))
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}


def build_demo_activity(store) -> None:
    """Six weeks of plausible activity (fixed seed) so the charts have something to draw."""
    rng = random.Random(7)
    titles = [
        "Linen shirt",
        "Canvas tote",
        "Wool scarf",
        "Leather belt",
        "Denim jacket",
        "Cotton tee",
        "Rain boots",
        "Silk tie",
        "Sun hat",
        "Knit beanie",
        "Chino shorts",
        "Trail sneakers",
    ]
    with unscoped():
        products = Product.objects.bulk_create(
            Product(
                store=store,
                sku=f"SKU-{i:03d}",
                title=t,
                brand=rng.choice(["Northwind", "Acme", "Fjord"]),
                price=Decimal(rng.randint(15, 120)),
            )
            for i, t in enumerate(titles)
        )
        customers = Customer.objects.bulk_create(
            Customer(store=store, external_id=f"cust-{i:04d}", country=rng.choice(["DE", "FR", "US", "CN"]))
            for i in range(80)
        )
        end = datetime(2024, 5, 31, 20, 0, tzinfo=UTC)
        events = []
        for d in range(42):
            day = end - timedelta(days=41 - d)
            for _ in range(rng.randint(25, 45) + d):
                c, p = rng.choice(customers), rng.choice(products[: rng.randint(3, len(products))])
                at = day - timedelta(minutes=rng.randint(0, 600))
                events.append(Event(store=store, customer=c, product=p, event_type="view", timestamp=at))
                if rng.random() < 0.3:
                    events.append(
                        Event(
                            store=store,
                            customer=c,
                            product=p,
                            event_type="add_to_cart",
                            value=1,
                            timestamp=at + timedelta(minutes=2),
                        )
                    )
                    if rng.random() < 0.45:
                        events.append(
                            Event(
                                store=store,
                                customer=c,
                                product=p,
                                event_type="purchase",
                                value=float(p.price),
                                quantity=rng.randint(1, 3),
                                order_id=f"o{len(events)}",
                                timestamp=at + timedelta(minutes=5),
                            )
                        )
        Event.objects.bulk_create(events)


@pytest.fixture
def browser_page():
    if not Path(CHROMIUM).exists():
        skip_or_fail(f"{CHROMIUM} is missing (apt-get install chromium)")
    # Playwright's sync API runs an event loop in this thread; Django's ORM refuses to run inside
    # one unless told it is safe (it is: the test's ORM calls never overlap a Playwright call).
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        try:
            yield page
        finally:
            browser.close()


def test_overview_renders_plotly_charts_from_local_assets(live_server, browser_page, store, make_user):
    make_user("merchant", store)
    build_demo_activity(store)
    page = browser_page
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    # A Content-Security-Policy violation (an inline script without the nonce, plotly needing eval)
    # shows up as a console error; the page must render without any.
    console_errors: list[str] = []
    page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)

    page.goto(f"{live_server.url}/accounts/login/?next=/s/alpha/")
    page.fill("#id_username", "merchant")
    page.fill("#id_password", "pw-123456!")
    page.click("button[type=submit].btn-primary")
    page.wait_for_url(f"{live_server.url}/s/alpha/")

    page.wait_for_selector("[data-figure='fig-events'].js-plotly-plot svg.main-svg", timeout=20_000)
    page.wait_for_selector("[data-figure='fig-funnel'].js-plotly-plot svg.main-svg", timeout=20_000)
    assert page.locator(".js-plotly-plot").count() == 2
    assert page.locator("[data-figure='fig-funnel'] g.trace").count() == 1
    assert page.locator("[data-figure='fig-events'] g.scatterlayer g.trace").count() == 3
    assert page.locator("[data-kpi='revenue']").inner_text().startswith("$")  # USD, as English writes it
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    foreign = [
        url
        for url in requested
        if urlsplit(url).scheme in {"http", "https", "ws", "wss"} and urlsplit(url).hostname not in LOCAL_HOSTS
    ]
    assert foreign == [], f"requests left the machine: {foreign}"
    assert any(url.endswith("/static/vendor/plotly/plotly.min.js") for url in requested)
    assert console_errors == [], console_errors


def test_schedule_form_keeps_one_cadence(live_server, browser_page, store, make_user):
    """Typing a daily hour empties the interval (and back), so a merchant never meets the "not both"
    error in a browser; the saved schedule is what the page then shows."""
    from shop_recs.stores.scoping import store_scope
    from shop_recs.training.models import TrainingSchedule

    make_user("merchant", store)
    page = browser_page
    page.goto(f"{live_server.url}/accounts/login/?next=/s/alpha/jobs/")
    page.fill("#id_username", "merchant")
    page.fill("#id_password", "pw-123456!")
    page.click("button[type=submit].btn-primary")
    page.wait_for_url(f"{live_server.url}/s/alpha/jobs/")

    assert page.input_value("#id_schedule-interval_hours") == ""
    page.fill("#id_schedule-interval_hours", "6")
    page.type("#id_schedule-daily_hour", "4")
    assert page.input_value("#id_schedule-interval_hours") == ""
    page.check("#id_schedule-enabled")
    page.click("#schedule-form button[type=submit]")
    page.wait_for_selector("text=Schedule saved.")
    assert "Daily at 04:00 UTC" in page.inner_text("#schedule-summary")
    with store_scope(store):
        row = TrainingSchedule.objects.get()
    assert row.enabled and row.daily_hour == 4 and row.interval_hours is None
    page.type("#id_schedule-interval_hours", "12")
    assert page.input_value("#id_schedule-daily_hour") == ""
