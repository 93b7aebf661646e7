"""Issue #14: every served item carries the product card (price as a decimal string, currency,
in_stock, image_url, url), with one shape on every serving endpoint, search included."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from shop_recs.catalog.services import upsert_products
from shop_recs.serving.models import StoreRules
from shop_recs.serving.snapshot import CARD_FIELDS
from shop_recs.stores.scoping import unscoped
from tests.serving.conftest import T0

pytestmark = pytest.mark.django_db
API = "/api/v1"

ENDPOINTS = {
    "customer": lambda c, n: c.get(f"{API}/recommendations/customer/C0?n={n}"),
    "session": lambda c, n: c.post(f"{API}/recommendations/session", {"viewed": ["M0"], "n": n}, format="json"),
    "similar": lambda c, n: c.get(f"{API}/products/M0/similar?n={n}"),
    "fbt": lambda c, n: c.get(f"{API}/products/M0/frequently-bought-together?n={n}"),
    "popular": lambda c, n: c.get(f"{API}/popular?n={n}"),
    "trending": lambda c, n: c.get(f"{API}/trending?n={n}"),
    "search": lambda c, n: c.get(f"{API}/search", {"q": "ceramic mug", "n": n}),
}
SCORES = {"search": {"score", "text_score", "personal_score"}}


@pytest.fixture(autouse=True)
def _search_sees_every_change(settings):
    settings.SEARCH_INDEX_CHECK_SECONDS = 0


@pytest.fixture
def cards(shop, make_customer, add_events):
    """The serving shop with card data: M1 in GBP with an image and a page, M2 without a price,
    M3 with a page only, the rest in the store's currency (EUR) and without images; baskets for FBT."""
    from shop_recs.serving.fbt import build_fbt

    store, p = shop["products"]["M0"].store, shop["products"]
    with unscoped():
        store.currency = "EUR"
        store.save(update_fields=["currency"])
        for sku, fields in {
            "M1": {
                "price": Decimal("12.50"),
                "currency": "GBP",
                "image_url": "https://cdn.example.com/m1.jpg",
                "url": "https://shop.example.com/p/m1",
            },
            "M2": {"price": None},
            "M3": {"url": "https://shop.example.com/p/m3"},
        }.items():
            for name, value in fields.items():
                setattr(p[sku], name, value)
            p[sku].save()
    buyer = make_customer(store, "BASKETS")
    rows = []
    for k, partner in enumerate(["M1", "M2", "M3", "N0", "S0"] * 2):
        at = T0 + timedelta(days=2, hours=k)
        rows += [(buyer, p["M0"], "purchase", at, f"b{k}"), (buyer, p[partner], "purchase", at, f"b{k}")]
    add_events(store, rows)
    build_fbt(store)
    return shop


def _items(response) -> list[dict]:
    assert response.status_code == 200, response.content
    items = response.json()["items"]
    assert items
    return items


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_every_endpoint_answers_with_the_card_fields(api_client, cards, endpoint):
    items = _items(ENDPOINTS[endpoint](api_client, 20))
    scores = SCORES.get(endpoint, {"score", "reason"})
    by_sku = {}
    for item in items:
        assert set(item) == set(CARD_FIELDS) | scores, item
        # The card fields come first, in one order, on every endpoint (the cards are pre-built dicts).
        assert tuple(item)[: len(CARD_FIELDS)] == CARD_FIELDS
        assert item["price"] is None or isinstance(item["price"], str)
        assert isinstance(item["in_stock"], bool) and len(item["currency"]) == 3
        by_sku[item["sku"]] = item
    # Whatever products the endpoint chose, each one's card says the same thing everywhere.
    expected = {
        "M1": ("12.50", "GBP", "https://cdn.example.com/m1.jpg", "https://shop.example.com/p/m1"),
        "M2": (None, "EUR", None, None),  # no price: null, never 0; no currency: the store's
        "M3": ("13.00", "EUR", None, "https://shop.example.com/p/m3"),
        "N0": ("15.00", "EUR", None, None),
    }
    seen = expected.keys() & by_sku.keys()
    assert seen, f"{endpoint} served none of {sorted(expected)}: {sorted(by_sku)}"
    for sku in seen:
        item = by_sku[sku]
        assert (item["price"], item["currency"], item["image_url"], item["url"]) == expected[sku], sku
        assert item["in_stock"] is True


def test_out_of_stock_is_said_when_the_store_serves_it(api_client, cards):
    store, p = cards["products"]["M0"].store, cards["products"]
    with unscoped():
        StoreRules.objects.update_or_create(store=store, defaults={"exclude_out_of_stock": False})
        p["N0"].in_stock = False
        p["N0"].save()
    items = _items(ENDPOINTS["similar"](api_client, 20))
    stock = {i["sku"]: i["in_stock"] for i in items}
    assert stock["N0"] is False and stock["M1"] is True


def test_a_bulk_upsert_reaches_the_cards_and_the_store_currency_follows(api_client, cards, settings):
    """Bulk upserts send no signals: the snapshot's fingerprint notices them (and the store's currency)."""
    settings.SERVING_CATALOG_TTL = 0
    store = cards["products"]["M0"].store
    upsert_products(
        store,
        [
            {
                "sku": "N0",
                "title": "Ceramic coffee mug new edition",
                "price": "7.25",
                "image_url": "https://cdn.example.com/n0.png",
                "url": "https://shop.example.com/p/n0",
                "category": "Kitchen > Mugs",
            }
        ],
    )
    n0 = {i["sku"]: i for i in _items(ENDPOINTS["similar"](api_client, 20))}["N0"]
    # upsert_products gives a priced product the store's currency explicitly.
    assert (n0["price"], n0["currency"], n0["image_url"]) == ("7.25", "EUR", "https://cdn.example.com/n0.png")
    with unscoped():
        store.currency = "CHF"
        store.save(update_fields=["currency"])
    m2 = {i["sku"]: i for i in _items(ENDPOINTS["similar"](api_client, 20))}["M2"]
    assert m2["currency"] == "CHF"  # the fallback follows the store without a catalog change


def test_search_and_recommendations_give_one_product_the_same_card(api_client, cards):
    rec = {i["sku"]: i for i in _items(ENDPOINTS["similar"](api_client, 20))}
    hit = {i["sku"]: i for i in _items(ENDPOINTS["search"](api_client, 20))}
    for sku in rec.keys() & hit.keys():
        assert {k: rec[sku][k] for k in CARD_FIELDS} == {k: hit[sku][k] for k in CARD_FIELDS}
    assert rec.keys() & hit.keys()


def test_openapi_documents_the_card_fields(api_client):
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema["components"]["schemas"]
    for name in ("RecommendedItem", "SearchItem"):
        props = components[name]["properties"]
        assert set(CARD_FIELDS) <= props.keys(), name
        assert props["price"]["type"] == "string" and props["price"]["format"] == "decimal"
        assert props["price"].get("nullable") is True
        assert props["image_url"].get("nullable") is True and props["url"].get("nullable") is True


def test_preview_and_customer_page_show_the_recommended_pictures(client, cards, make_user):
    """The dashboard's served lists (the preview's columns, the customer's recommendations) draw
    each item's image from the same cards: M1 has one, the others get the neutral box."""
    store = cards["products"]["M0"].store
    client.force_login(make_user("merchant", store))
    m1 = '<img class="thumb thumb-sm" src="https://cdn.example.com/m1.jpg" alt="Ceramic coffee mug model 1"'
    empty = '<span class="thumb thumb-sm thumb-empty" role="img" aria-label="No image"'
    preview = client.get(f"/s/{store.slug}/recommendations/?product=M0")
    assert preview.status_code == 200
    html = preview.content.decode()
    assert m1 in html and empty in html
    page = client.get(f"/s/{store.slug}/customers/C0/")
    assert page.status_code == 200
    recommended = page.content.decode().split("data-recommendations", 1)[1].split("</ol>", 1)[0]
    assert "<img" in recommended or "thumb-empty" in recommended
    assert recommended.count('class="thumb ') == recommended.count("<li>")
