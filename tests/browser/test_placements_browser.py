"""Placements in Chromium: a merchant previews a placement, toggles a rule for the preview and sees
the list change; then edits the placement's pins through the product picker (no JSON, SKUs in any
case), confirms, and the preview follows. The Placements page, a placement's page and the preview
are checked at 1,366×768 and 390×844 (no sideways scrolling, no clipped button); screenshots go to
``SCREENSHOT_DIR``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shop_recs.serving import placements as plc
from shop_recs.serving.models import ShopperFacingChange, StoreRules
from shop_recs.stores.scoping import store_scope
from tests.browser.test_dashboard_browser import browser_page  # noqa: F401 - fixture
from tests.browser.test_experiment_builder_browser import CLIPPED_JS
from tests.serving.conftest import add_events, shop  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOT_DIR = Path(os.environ.get("SCREENSHOT_DIR", "/tmp/shop_recs_screenshots"))
SIZES = {"laptop": (1366, 768), "phone": (390, 844)}
BLEND = "[data-column='blend'] li.rec-item"


@pytest.fixture(autouse=True)
def _model_dir(settings, tmp_path):
    settings.MODEL_DIR = tmp_path / "models"


def _layout_problems(page, name: str) -> list[str]:
    problems = []
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    url = page.url
    for size_name, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        page.goto(url)
        page.wait_for_load_state("load")
        if page.evaluate("document.documentElement.scrollWidth") > width:
            problems.append(f"{name} scrolls sideways at {size_name}")
        clipped = page.evaluate(CLIPPED_JS)
        if clipped:
            problems.append(f"{name} at {size_name}: clipped buttons {clipped}")
        page.screenshot(path=str(SCREENSHOT_DIR / f"placements-{name}-{size_name}.png"), full_page=True)
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(url)
    return problems


def _blend(page) -> list[str]:
    return [el.get_attribute("data-sku") for el in page.query_selector_all(BLEND)]


def test_merchant_previews_a_placement_toggles_a_rule_and_edits_its_pins(
    live_server,
    browser_page,  # noqa: F811 - the imported Chromium fixture
    store,
    shop,  # noqa: F811 - the imported fixture
    make_user,
):
    make_user("merchant", store)
    p = shop["products"]
    with store_scope(store):
        pdp = plc.create_placement(store, None, key="pdp", name="Product page")
        row = plc.rules_row(pdp)
        row.pinned_product_ids = [p["S3"].pk]
        row.save()
    page = browser_page
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    base = f"{live_server.url}/s/alpha/recommendations/"
    page.goto(f"{live_server.url}/accounts/login/?next=/s/alpha/recommendations/%3Fcustomer%3DC0")
    page.fill("#id_username", "merchant")
    page.fill("#id_password", "pw-123456!")
    page.click("button[type=submit].btn-primary")
    page.wait_for_selector(BLEND)
    default = _blend(page)
    assert default and default[0] != "S3"

    # Picking the placement shows its rules at once: its pin leads.
    page.select_option("#id_preview_placement", "pdp")
    page.wait_for_url("**placement=pdp**")
    page.wait_for_selector(BLEND)
    pinned = _blend(page)
    assert pinned[0] == "S3", pinned
    assert page.input_value("#id_preview_placement") == "pdp"

    # Switching "boosts and pins" off for this preview takes the pin out of the list.
    page.uncheck("#id_apply_boosts")
    page.click("#rule-toggles button[type=submit]")
    page.wait_for_url("**rules=1**")
    page.wait_for_selector("#rules-effect")
    unpinned = _blend(page)
    assert unpinned[0] != "S3" and unpinned != pinned, unpinned
    assert "Boosts and pins: on → off" in page.inner_text("#rules-effect")
    assert "placement=pdp" in page.url  # the toggles stay on the placement
    problems = _layout_problems(page, "preview")

    # The placement's page: pins picked with the product search box, in lower case.
    page.goto(f"{base}placements/")
    page.wait_for_selector("#placements tr[data-placement='pdp']")
    problems += _layout_problems(page, "list")
    page.click("#placements tr[data-placement='pdp'] a:has-text('Edit')")
    page.wait_for_selector("#placement-settings")
    problems += _layout_problems(page, "edit")
    page.fill("#id_pinned", "")
    picker = page.locator("input.sku-pick[data-target='id_pinned']")
    picker.fill("s1")
    picker.dispatch_event("change")
    assert page.input_value("#id_pinned") == "s1"
    page.click("#rules-confirm input[type=checkbox]")
    page.click("#rules-form button[type=submit]")
    page.wait_for_selector("text=Its lists use them from now on.")
    with store_scope(store):
        assert StoreRules.objects.get(placement=pdp).pinned_product_ids == [p["S1"].pk]
        assert ShopperFacingChange.objects.filter(summary__startswith="rules of placement pdp").exists()

    page.goto(f"{base}?placement=pdp&customer=C0")
    page.wait_for_selector(BLEND)
    assert _blend(page)[0] == "S1"
    assert problems == [], problems
    assert errors == [], errors
