"""The rule segment builder in Chromium: a merchant builds a segment from two conditions with the
category and brand pickers, watches the live audience change, sees an unknown category named on its
condition, saves, then edits the segment (builder and the Advanced JSON view round-trip).
Both pages fit a laptop (1,366×768) and a phone (390×844) without sideways scrolling.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from analytics.models import Segment
from analytics.services import build_profiles, get_settings
from shop_recs.activity.models import Customer, Event
from shop_recs.catalog.models import Category, Product
from shop_recs.serving.models import ShopperFacingChange
from shop_recs.stores.scoping import store_scope, unscoped
from tests.browser.test_dashboard_browser import browser_page  # noqa: F401 - fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOT_DIR = Path(os.environ.get("SCREENSHOT_DIR", "/tmp/shop_recs_screenshots"))
SIZES = {"laptop": (1366, 768), "phone": (390, 844)}


def _shop(store) -> None:
    """Ten buyers: c0–c2 buy Acme sneakers, c3–c7 Fjord sneakers, c8–c9 Acme homeware."""
    now = timezone.now()
    with unscoped():
        fashion = Category.objects.create(store=store, name="Fashion", path="Fashion")
        sneakers = Category.objects.create(store=store, name="Sneakers", path="Fashion > Sneakers", parent=fashion)
        home = Category.objects.create(store=store, name="Home", path="Home")
        # A merchant's category text reaches the picker: it must stay text.
        Category.objects.create(store=store, name="x", path='<img src=x onerror="window.__xss=1">')
        acme_sneaker = Product.objects.create(
            store=store, sku="S-ACME", title="Acme runner", category=sneakers, brand="Acme", price=Decimal(80)
        )
        fjord_sneaker = Product.objects.create(
            store=store, sku="S-FJORD", title="Fjord trail", category=sneakers, brand="Fjord", price=Decimal(90)
        )
        acme_mug = Product.objects.create(
            store=store, sku="H-ACME", title="Acme mug", category=home, brand="Acme", price=Decimal(12)
        )
        for i in range(10):
            customer = Customer.objects.create(store=store, external_id=f"c{i}")
            product = acme_sneaker if i < 3 else fjord_sneaker if i < 8 else acme_mug
            Event.objects.create(
                store=store,
                customer=customer,
                product=product,
                event_type="purchase",
                value=float(product.price),
                quantity=1,
                order_id=f"o{i}",
                timestamp=now - timedelta(days=2 + i),
            )
    build_profiles(store, "full")
    cfg = get_settings(store)
    cfg.min_cell_size = 1
    with store_scope(store):
        cfg.save()


def _audience_is(page, text: str) -> None:
    page.wait_for_function(
        "(t) => document.getElementById('audience-size').textContent.trim() === t", arg=text, timeout=10_000
    )


def _fits(page, width: int, height: int, name: str) -> None:
    page.set_viewport_size({"width": width, "height": height})
    page.wait_for_timeout(100)  # one layout pass after the resize
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    page.screenshot(path=str(SCREENSHOT_DIR / f"{name}.png"), full_page=True)
    assert scroll_width <= width, f"{name}: {scroll_width}px in a {width}px window"


def test_build_watch_the_audience_save_and_edit(live_server, browser_page, store, make_user):  # noqa: F811
    make_user("merchant", store)
    _shop(store)
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page = browser_page
    console_errors: list[str] = []
    page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
    page.goto(f"{live_server.url}/accounts/login/?next=/s/alpha/insights/segments/new/")
    page.fill("#id_username", "merchant")
    page.fill("#id_password", "pw-123456!")
    page.click("button[type=submit].btn-primary")
    page.wait_for_url(f"{live_server.url}/s/alpha/insights/segments/new/")

    # The builder replaces the JSON box: the default two conditions, the Advanced view closed.
    page.wait_for_selector("#builder .seg-cond")
    assert page.locator("#builder .seg-cond").count() == 2
    assert page.locator("#advanced-json").get_attribute("open") is None
    for name, (width, height) in SIZES.items():
        _fits(page, width, height, f"segment-new-{name}")
    page.set_viewport_size({"width": 1366, "height": 768})

    # Condition 1: bought in a category, picked from the catalog; condition 2 removed for now.
    page.locator("#builder .seg-cond").nth(1).locator(".seg-remove").click()
    first = page.locator("#builder .seg-cond").nth(0)
    first.locator("select.seg-field").select_option("purchased_in_category")
    _audience_is(page, "–")  # no category yet: nothing asked
    # An unknown name is an error on that condition, with the catalog's closest path.
    first.locator("input.seg-pick").fill("Sneakers")
    page.wait_for_selector(".seg-cond-error")
    assert "did you mean 'Fashion > Sneakers'?" in first.locator(".seg-error").inner_text()
    first.locator("input.seg-pick").fill("Fashion > Sneakers")
    _audience_is(page, "8")
    assert page.locator(".seg-cond-error").count() == 0

    # Condition 2: interest in a brand, from the brand picker: the audience narrows to the Acme buyers.
    page.click("#builder .seg-add")
    second = page.locator("#builder .seg-cond").nth(1)
    second.locator("select.seg-field").select_option("brand_affinity")
    second.locator("input.seg-pick").fill("Acme")
    second.locator("select.seg-op").select_option(">")
    second.locator("input.seg-value").fill("0.5")
    _audience_is(page, "3")
    # "Any of these" widens it: sneaker buyers or Acme fans.
    page.locator("#builder select.seg-mode").select_option("any")
    _audience_is(page, "10")
    page.locator("#builder select.seg-mode").select_option("all")
    _audience_is(page, "3")
    # NOT on the group: everyone else (10 profiles, 3 matched); the JSON wraps the group in "not".
    page.locator("#builder .seg-not input").first.check()
    _audience_is(page, "7")
    assert list(json.loads(page.input_value("#id_rules"))) == ["not"]
    page.locator("#builder .seg-not input").first.uncheck()
    _audience_is(page, "3")

    page.fill("#id_name", "Acme sneaker fans")
    page.click("#save-segment")
    page.wait_for_selector("#edit-segment")
    expected = {
        "all": [
            {"field": "purchased_in_category", "category": "Fashion > Sneakers", "within_days": 30},
            {"field": "brand_affinity", "key": "Acme", "op": ">", "value": 0.5},
        ]
    }
    with store_scope(store):
        seg = Segment.objects.get(name="Acme sneaker fans")
    assert seg.rules == expected and seg.size == 3

    # Edit: the builder shows what was saved; the Advanced JSON follows the builder and back.
    page.click("#edit-segment")
    page.wait_for_selector("#builder .seg-cond")
    assert page.locator("#builder .seg-cond").count() == 2
    assert page.locator("#builder .seg-cond").nth(0).locator("input.seg-pick").input_value() == "Fashion > Sneakers"
    _audience_is(page, "3")
    for name, (width, height) in SIZES.items():
        _fits(page, width, height, f"segment-edit-{name}")
    page.set_viewport_size({"width": 1366, "height": 768})
    page.locator("#builder .seg-cond").nth(1).locator("input.seg-value").fill("0.1")
    page.click("#advanced-json summary")
    assert json.loads(page.input_value("#id_rules"))["all"][1]["value"] == 0.1
    edited = dict(expected, all=[dict(expected["all"][0], within_days=4), expected["all"][1]])
    edited["all"][1] = dict(expected["all"][1], value=0.1)
    page.fill("#id_rules", json.dumps(edited))
    assert page.locator("#builder .seg-cond").nth(0).locator("input.seg-days").input_value() == "4"
    _audience_is(page, "2")  # c0 and c1 bought sneakers within the last four days
    page.click("#save-segment")
    page.wait_for_selector("#edit-segment")
    with store_scope(store):
        seg.refresh_from_db()
        change = ShopperFacingChange.objects.get()
    assert seg.rules == edited and seg.size == 2
    assert change.object_id == seg.pk and change.details["rules"] == [expected, edited]
    assert page.evaluate("window.__xss === undefined")
    # The one 400 is the unknown category's answer (Chromium logs every 4xx); nothing else went wrong.
    bad_request = "Failed to load resource: the server responded with a status of 400 (Bad Request)"
    assert console_errors == [bad_request], console_errors
