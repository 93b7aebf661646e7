"""Ads in a real browser: a merchant creates a pay-per-click campaign with a money budget through the
form (products chosen with the picker, the creative previewed as an image), starts it after the
confirmation, and finds it in the list with its budget in the store currency. The ads pages fit a
laptop and a phone without sideways scrolling."""

from __future__ import annotations

from decimal import Decimal

import pytest

from shop_recs.ads.models import Campaign
from shop_recs.serving.models import ShopperFacingChange
from shop_recs.stores.scoping import store_scope
from tests.browser.test_dashboard_browser import browser_page  # noqa: F401 - fixture
from tests.browser.test_layout import SIZES, WIDEST_JS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

IMAGE = "/static/shop_recs/placeholders/beauty--makeup.svg"


def _login(page, live_server, next_url: str) -> None:
    page.goto(f"{live_server.url}/accounts/login/?next={next_url}")
    page.fill("#id_username", "merchant")
    page.fill("#id_password", "pw-123456!")
    page.click("button[type=submit].btn-primary")
    page.wait_for_url(f"{live_server.url}{next_url}")


def test_merchant_creates_a_cpc_campaign_and_starts_it(
    live_server,
    browser_page,  # noqa: F811 - the imported Chromium fixture
    store,
    make_user,
    make_product,
):
    make_user("merchant", store)
    make_product(store, "MUG-1", title="Blue ceramic mug", price=Decimal("12.50"))
    make_product(store, "MUG-2", title="Red ceramic mug", price=Decimal("14.00"))
    make_product(store, "TEE-1", title="Cotton tee", price=Decimal("20.00"))
    page = browser_page
    console_errors: list[str] = []
    page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
    _login(page, live_server, "/s/alpha/ads/new/")

    page.fill("#id_name", "Mug week")
    page.fill("#id_title", "Mugs for every morning")
    page.fill("#id_image_url", f"{live_server.url}{IMAGE}")
    page.fill("#id_landing_url", "https://shop.example/mugs")
    # The live preview shows the creative as an image with alt text, as soon as the URL is typed.
    preview = page.locator("#preview-image")
    preview.wait_for(state="visible")
    assert preview.get_attribute("src").endswith(IMAGE)
    assert preview.get_attribute("alt") == "Mugs for every morning"

    # The picker: type part of a title, choose a suggestion the lookup returned, add it.
    for query, sku in (("blue cer", "MUG-1"), ("red", "MUG-2")):
        page.fill("#product-picker", query)
        page.wait_for_selector(f"#product-options option[value='{sku}']", state="attached")
        page.fill("#product-picker", sku)
        page.click("#product-add")
        page.wait_for_selector(f"#picked-products .chip[data-sku='{sku}']")
    assert page.input_value("#id_skus") == "MUG-1, MUG-2"

    page.select_option("#id_pricing_model", "cpc")
    page.fill("#id_bid", "0.35")
    page.fill("#id_budget", "250.00")
    page.fill("#id_daily_budget", "25.00")
    assert page.inner_text("#preview-price") == "0.35 USD per click"
    assert page.locator("[data-currency]").first.inner_text() == "USD"
    page.fill("#id_starts_at", "2026-01-01T00:00")
    page.fill("#id_ends_at", "2036-01-01T00:00")
    page.select_option("#id_status", "draft")
    page.click("#campaign-form button[type=submit]")
    page.wait_for_selector("text=Campaign created.")

    with store_scope(store):
        campaign = Campaign.objects.get(name="Mug week")
        assert sorted(campaign.products.values_list("sku", flat=True)) == ["MUG-1", "MUG-2"]
    assert (campaign.pricing_model, campaign.bid, campaign.budget, campaign.daily_budget) == (
        "cpc",
        Decimal("0.35"),
        Decimal("250.00"),
        Decimal("25.00"),
    )
    assert campaign.status == "draft"
    # The report shows the creative as an image, not as URL text.
    creative = page.locator("img.ad-creative")
    assert creative.get_attribute("alt") == "Mugs for every morning"
    assert page.evaluate("document.querySelector('img.ad-creative').naturalWidth") > 0

    # Starting it asks for the confirmation first.
    page.click("button[name=status][value=active]")
    page.wait_for_selector("text=Tick the confirmation to activate")
    campaign.refresh_from_db()
    assert campaign.status == "draft"
    page.check("input[name=confirm]")
    page.click("button[name=status][value=active]")
    page.wait_for_selector("text=Campaign is now Active.")
    campaign.refresh_from_db()
    assert campaign.status == "active"
    with store_scope(store):
        assert ShopperFacingChange.objects.filter(kind="campaign", object_id=campaign.pk).count() == 1

    page.goto(f"{live_server.url}/s/alpha/ads/")
    row = page.locator(f"tr[data-campaign='{campaign.pk}']")
    assert "Mug week" in row.inner_text()
    assert row.locator("[data-budget]").inner_text().startswith("$250.00")
    assert "Per click" in row.inner_text()

    # The three ads pages fit a laptop and a phone (no sideways scroll).
    too_wide = []
    for size_name, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        for path in (
            "/s/alpha/ads/",
            "/s/alpha/ads/new/",
            f"/s/alpha/ads/{campaign.pk}/",
            f"/s/alpha/ads/{campaign.pk}/edit/",
        ):
            page.goto(f"{live_server.url}{path}")
            page.wait_for_load_state("load")
            scroll_width = page.evaluate("document.documentElement.scrollWidth")
            if scroll_width > width:
                too_wide.append(f"{path} at {size_name}: {scroll_width}px; {page.evaluate(WIDEST_JS, width)}")
            page.screenshot(
                path=f"/tmp/shop_recs_ads_{size_name}_{path.strip('/').replace('/', '_')}.png", full_page=True
            )
    assert not too_wide, "\n".join(too_wide)
    assert console_errors == [], console_errors
