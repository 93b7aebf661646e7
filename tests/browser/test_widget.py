"""Issue 16 §4: the storefront widget in a real browser, through real CORS.

A second, tiny HTTP server on another port plays the shop: its page loads ``widget.js`` from the live
Django server and calls the API cross-origin with a publishable key. From an allowed origin the
cards render, the served list (the impression) is stored under the list id the page got, and a click
on a card stores a ``click`` event attributed to that list before the browser follows the link. The
same page served from an origin the key does not list renders nothing, and the console shows the
browser's CORS refusal.
"""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from shop_recs.activity.models import Customer, Event
from shop_recs.catalog.models import Product
from shop_recs.serving.models import RecommendationList
from shop_recs.stores.models import ApiKey, KeyKind
from shop_recs.stores.scoping import unscoped
from tests.conftest import skip_or_fail

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
# Product data that would run script if it were ever parsed as HTML.
HOSTILE_TITLE = '<img src=x onerror="window.__pwned=1">Mug'

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Shop</title></head>
<body>
<h1>Our shop</h1>
<div id="recs" data-shop-recs data-api="{api}" data-key="{key}" data-customer="c-1" data-placement="home"
     data-n="4" data-link="{shop}/product.html?sku={{sku}}" data-currency="EUR"></div>
<script src="{widget}" async></script>
</body></html>
"""
PRODUCT_PAGE = "<!doctype html><html><head><title>Product</title></head><body><h1>Product page</h1></body></html>"


class ShopServer:
    """The shop's own site on another port (another origin): serves the page and a product page."""

    def __init__(self) -> None:
        pages: dict[str, str] = {}
        self.pages = pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                body = pages.get(self.path.split("?", 1)[0])
                if body is None:
                    self.send_error(404)
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def shop_servers():
    allowed, refused = ShopServer(), ShopServer()
    yield allowed, refused
    allowed.close()
    refused.close()


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists():
        skip_or_fail(f"{CHROMIUM} is missing (apt-get install chromium)")
    # Playwright's sync API runs an event loop in this thread; the test's ORM calls never overlap it.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def shop_data(store):
    """Four products with recent activity, so an unknown-history customer gets a trending list."""
    now = datetime.now(UTC)
    with unscoped():
        products = [
            Product.objects.create(store=store, sku=f"SKU-{i}", title=f"Product {i}", price=Decimal("10.50") + i)
            for i in range(3)
        ]
        products.append(Product.objects.create(store=store, sku="SKU-X", title=HOSTILE_TITLE, price=Decimal("5")))
        buyers = [Customer.objects.create(store=store, external_id=f"b-{i}") for i in range(6)]
        Customer.objects.create(store=store, external_id="c-1")
        Event.objects.bulk_create(
            Event(
                store=store,
                customer=buyer,
                product=product,
                event_type="view",
                timestamp=now - timedelta(hours=1 + i + j),
            )
            for i, buyer in enumerate(buyers)
            for j, product in enumerate(products)
        )
    return store


def _page_for(shop: ShopServer, live_server, raw_key: str) -> str:
    shop.pages["/index.html"] = PAGE.format(
        api=f"{live_server.url}/api/v1",
        key=raw_key,
        shop=shop.origin,
        widget=f"{live_server.url}/static/shop_recs/widget.js",
    )
    shop.pages["/product.html"] = PRODUCT_PAGE
    return f"{shop.origin}/index.html"


def test_widget_renders_through_cors_and_reports_the_click(live_server, browser, shop_data, shop_servers, settings):
    settings.SERVING_LOG_BUFFER_ROWS = 0  # the served list is written on the request, readable at once
    allowed, refused = shop_servers
    _, raw = ApiKey.generate(shop_data, "storefront", kind=KeyKind.PUBLISHABLE, allowed_origins=[allowed.origin])

    page = browser.new_page()
    console: list[str] = []
    page.on("console", lambda msg: console.append(msg.text))
    page.goto(_page_for(allowed, live_server, raw))
    page.wait_for_selector("#recs[data-shop-recs-state=rendered]", timeout=20_000)

    cards = page.locator("#recs li.shop-recs-card")
    skus = [cards.nth(i).get_attribute("data-sku") for i in range(cards.count())]
    assert len(skus) >= 2, console
    titles = page.locator("#recs .shop-recs-title").all_inner_texts()
    assert HOSTILE_TITLE in titles  # shown as text, never parsed
    assert page.locator("#recs img").count() == 0 and page.evaluate("window.__pwned") is None
    assert "€" in page.locator("#recs .shop-recs-price").first.inner_text()

    # The impression: the served list, stored by the server under the list id the page received.
    list_id = page.get_attribute("#recs", "data-list-id")
    assert list_id
    with unscoped():
        served = RecommendationList.objects.get(list_id=list_id)
        by_pk = dict(Product.objects.filter(store=shop_data).values_list("pk", "sku"))
    assert served.store_id == shop_data.pk and served.placement == "home"
    assert [by_pk[pk] for pk in served.product_ids] == skus

    # The click: an event attributed to that list, then the browser follows the card's link.
    first = skus[0]
    with page.expect_navigation(url=f"{allowed.origin}/product.html?sku={first}", timeout=20_000):
        cards.first.locator("a").click()
    with unscoped():
        clicks = list(Event.objects.filter(store=shop_data, event_type="click").select_related("product", "customer"))
    assert len(clicks) == 1
    click = clicks[0]
    assert click.product.sku == first and click.customer.external_id == "c-1"
    assert click.context == {"list_id": list_id, "placement": "home", "source": "widget"}
    page.close()


def test_widget_on_an_origin_not_allowed_renders_nothing(live_server, browser, shop_data, shop_servers):
    allowed, refused = shop_servers
    _, raw = ApiKey.generate(shop_data, "storefront", kind=KeyKind.PUBLISHABLE, allowed_origins=[allowed.origin])

    page = browser.new_page()
    console: list[str] = []
    page.on("console", lambda msg: console.append(msg.text))
    page.goto(_page_for(refused, live_server, raw))
    page.wait_for_selector("#recs[data-shop-recs-state=failed]", state="attached", timeout=20_000)

    assert page.locator("#recs li").count() == 0
    assert page.inner_text("#recs") == ""
    assert any("CORS policy" in text and refused.origin in text for text in console), console
    with unscoped():
        assert not RecommendationList.objects.filter(store=shop_data).exists()  # the preflight stopped it
        assert not Event.objects.filter(store=shop_data, event_type="click").exists()
    page.close()
