"""Issue #14 ("No pictures"): product ``url``/``image_url`` validation on every way in, the demo's
local placeholder images, and product images on the dashboard pages."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from shop_recs.activity.models import Event
from shop_recs.catalog import validation as rules
from shop_recs.catalog.admin import ProductAdminForm
from shop_recs.catalog.models import Product
from shop_recs.imports.demo_catalog import DEMO_SHOP_URL, _make_catalog, demo_categories
from shop_recs.imports.placeholders import (
    PLACEHOLDER_DIR,
    placeholder_name,
    placeholder_svg,
    placeholder_url,
    static_placeholder_dir,
)
from shop_recs.stores.scoping import unscoped
from tests.browser.test_dashboard_browser import browser_page  # noqa: F401 - the Chromium fixture

pytestmark = pytest.mark.django_db
API = "/api/v1"
SCREENSHOT_DIR = Path(os.environ.get("SCREENSHOT_DIR", "/tmp/shop_recs_screenshots"))
GOOD = "https://shop.example.com/products/blue-mug?colour=blue#top"


# --- validation: one rule for the API, the importers and the admin -------------------------------


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("javascript:alert(1)", "must start with http:// or https://"),
        ("JavaScript:alert(1)", "must start with http:// or https://"),
        ("data:image/svg+xml;base64,PHN2Zz4=", "must start with http:// or https://"),
        ("ftp://cdn.example.com/a.jpg", "must start with http:// or https://"),
        ("//cdn.example.com/a.jpg", "must start with http:// or https://"),
        ("java\tscript:alert(1)", "must not contain spaces or control characters"),
        ("https://shop.example.com/a\x07b", "must not contain spaces or control characters"),
        ("https://shop.example.com/a b", "must not contain spaces or control characters"),
        ("https://", "must be a valid http(s) URL with a host name"),
        ("https://" + "a" * 1000 + ".com", "must be at most 1000 characters (got 1012)"),
    ],
)
def test_url_rule_refuses_with_a_reason(value, reason):
    assert rules.url_problem(value) == reason


def test_url_rule_accepts_http_https_and_empty():
    for value in ("", GOOD, "http://localhost:8000/static/x.svg", "https://例え.jp/商品"):
        assert rules.url_problem(value) is None, value


@pytest.mark.parametrize("field", ["url", "image_url"])
def test_api_refuses_bad_urls_naming_the_field(api_client, store, field):
    too_long = "https://shop.example.com/" + "x" * 1000
    for bad, why in (("javascript:alert(1)", "http:// or https://"), (too_long, "at most 1000 characters")):
        response = api_client.put(f"{API}/products/MUG-1", {"title": "Blue mug", field: bad}, format="json")
        assert response.status_code == 400, response.content
        details = response.json()["error"]["details"]
        assert [d["field"] for d in details] == [field] and why in details[0]["reason"]
    bulk = [{"sku": "A", "title": "A", field: GOOD}, {"sku": "B", "title": "B", field: "javascript:void(0)"}]
    response = api_client.post(f"{API}/products/bulk", bulk, format="json")
    assert response.status_code == 400
    assert [(d["index"], d["field"]) for d in response.json()["error"]["details"]] == [(1, field)]
    with unscoped():
        assert not Product.objects.filter(store=store).exists()  # nothing written


def test_api_stores_and_returns_the_product_url(api_client, store):
    body = {"title": "Blue mug", "url": GOOD, "image_url": "https://cdn.example.com/mug.jpg", "price": "12.5"}
    response = api_client.put(f"{API}/products/MUG-1", body, format="json")
    assert response.status_code == 201, response.content
    data = api_client.get(f"{API}/products/MUG-1").json()
    assert (data["url"], data["image_url"], data["price"]) == (GOOD, "https://cdn.example.com/mug.jpg", "12.50")
    # PUT replaces the whole product: a later PUT without url clears it.
    api_client.put(f"{API}/products/MUG-1", {"title": "Blue mug"}, format="json")
    assert api_client.get(f"{API}/products/MUG-1").json()["url"] == ""


def test_admin_form_applies_the_same_rule(store):
    form = ProductAdminForm(data={"url": "ftp://shop.example.com/a", "image_url": "javascript:alert(1)"})
    form.is_valid()
    assert form.errors["url"] == ["must start with http:// or https://"]
    assert "image_url" in form.errors  # Django's own URL check already refuses a javascript: URL


# --- the demo's local placeholder images ---------------------------------------------------------


def test_every_demo_category_has_its_committed_placeholder():
    folder = static_placeholder_dir()
    categories = demo_categories()
    assert len(categories) == 40
    for path, top in categories:
        file = folder / placeholder_name(path)
        # The committed set is exactly what the generator draws (manage.py demo_placeholders).
        assert file.read_text(encoding="utf-8") == placeholder_svg(path, top), file
        assert file.stat().st_size < 2_000
    assert sorted(p.name for p in folder.glob("*.svg")) == sorted(placeholder_name(p) for p, _ in categories)


def test_demo_products_point_at_this_sites_placeholders_and_a_page(settings):
    settings.SITE_URL = "http://demo.local:8000"
    catalog = _make_catalog(np.random.default_rng(7), 120, "EUR")
    prefix = f"http://demo.local:8000/static/{PLACEHOLDER_DIR}/"
    for row in catalog.rows:
        assert row["image_url"] == prefix + placeholder_name(row["category"])
        assert (static_placeholder_dir() / row["image_url"].removeprefix(prefix)).is_file()
        assert row["url"].startswith(DEMO_SHOP_URL + "/products/")
        assert rules.url_problem(row["image_url"]) is None and rules.url_problem(row["url"]) is None


def test_placeholders_are_served_as_static_files(client):
    name = placeholder_name(demo_categories()[0][0])
    response = client.get(f"/static/{PLACEHOLDER_DIR}/{name}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("image/svg+xml")
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert body.startswith(b"<svg ")


def test_placeholder_url_uses_site_url(settings):
    settings.SITE_URL = "https://recs.example.com"
    assert placeholder_url("Books > Fiction") == f"https://recs.example.com/static/{PLACEHOLDER_DIR}/books--fiction.svg"


# --- the dashboard shows the pictures ------------------------------------------------------------


@pytest.fixture
def pictured(store, make_product, make_customer, make_user):
    """Two products: one with an image (an external URL) and a page, one with neither."""
    make_user("merchant", store)
    pic = make_product(store, "PIC-1", title="Mug <b>bold</b>", image_url="https://cdn.example.com/mug.jpg", url=GOOD)
    bare = make_product(store, "BARE-1", title="Plain kettle")
    customer = make_customer(store, "cust-1")
    Event.all_stores.create(store=store, customer=customer, product=pic, event_type="view", timestamp=timezone.now())
    Event.all_stores.create(store=store, customer=customer, product=bare, event_type="view", timestamp=timezone.now())
    return store


def _page(client, url: str) -> str:
    client.force_login(get_user_model().objects.get(username="merchant"))
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


IMG = (
    '<img class="thumb thumb-{size}" src="https://cdn.example.com/mug.jpg" '
    'alt="Mug &lt;b&gt;bold&lt;/b&gt;" loading="lazy"'
)
EMPTY = '<span class="thumb thumb-{size} thumb-empty" role="img" aria-label="No image"'


def test_catalog_list_shows_thumbnails_and_a_neutral_box(client, pictured):
    html = _page(client, "/s/alpha/catalog/")
    assert IMG.format(size="md") in html  # the title is escaped in alt, never markup
    assert EMPTY.format(size="md") in html


def test_product_page_shows_the_picture_and_the_page_link(client, pictured):
    html = _page(client, "/s/alpha/catalog/PIC-1/")
    assert IMG.format(size="lg") in html
    assert f'href="{GOOD.replace("&", "&amp;")}"' in html
    assert EMPTY.format(size="lg") in _page(client, "/s/alpha/catalog/BARE-1/")


def test_customer_page_activity_shows_thumbnails(client, pictured):
    html = _page(client, "/s/alpha/customers/cust-1/")
    assert IMG.format(size="sm") in html and EMPTY.format(size="sm") in html


def test_this_sites_own_images_are_made_relative(client, pictured, settings):
    """The demo's placeholders load wherever the dashboard is opened (127.0.0.1, a LAN name)."""
    with unscoped():
        Product.objects.filter(sku="PIC-1").update(
            image_url=f"{settings.SITE_URL}/static/{PLACEHOLDER_DIR}/books--fiction.svg"
        )
    html = _page(client, "/s/alpha/catalog/")
    assert f'src="/static/{PLACEHOLDER_DIR}/books--fiction.svg"' in html


# --- in a browser: the demo pictures load, the pages fit a laptop and a phone --------------------


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_demo_pictures_load_and_fit_laptop_and_phone(
    live_server,
    browser_page,  # noqa: F811 - the imported Chromium fixture
    store,
    make_user,
    make_product,
    settings,
):
    settings.SITE_URL = "http://localhost:1"  # not the live server: the page must use the path
    make_user("merchant", store)
    for i, (path, _) in enumerate(demo_categories()[:6]):
        make_product(store, f"SKU-{i}", title=f"Product {i} " + "long " * 12, image_url=placeholder_url(path))
    make_product(store, "SKU-X", title="No picture")
    page = browser_page
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.goto(f"{live_server.url}/accounts/login/?next=/s/alpha/catalog/")
    page.fill("#id_username", "merchant")
    page.fill("#id_password", "pw-123456!")
    page.click("button[type=submit].btn-primary")
    page.wait_for_url(f"{live_server.url}/s/alpha/catalog/")
    for width, height in ((1366, 768), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        for url in ("/s/alpha/catalog/", "/s/alpha/catalog/SKU-0/"):
            page.goto(live_server.url + url)
            page.wait_for_load_state("load")
            # Lazy images below the fold load only when scrolled to: load them all to check each one.
            page.evaluate("document.querySelectorAll('img.thumb').forEach(i => { i.loading = 'eager'; })")
            page.wait_for_function("() => [...document.images].every(i => i.complete)")
            loaded = page.eval_on_selector_all("img.thumb", "els => els.map(e => e.naturalWidth > 0)")
            assert loaded and all(loaded), (url, width, loaded)
            name = "catalog" if url.endswith("catalog/") else "product"
            page.screenshot(path=str(SCREENSHOT_DIR / f"cards-{name}-{width}.png"), full_page=True)
            scroll = page.evaluate("document.documentElement.scrollWidth")
            assert scroll <= width, (url, width, scroll)
    assert Path(django_settings.BASE_DIR, "static", PLACEHOLDER_DIR).is_dir()
