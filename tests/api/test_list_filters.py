"""Issue 16: the API's list endpoints filter with django-filter and page with bounds.

Every list endpoint (``GET /products``, ``GET /customers/{id}/events``): a bad boolean, a bad date,
a bad integer and an over-limit page size are a 400 ``invalid_input`` naming the parameter and the
value; valid filters really narrow the list; the OpenAPI schema documents every filter.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from shop_recs.catalog.models import Category, Product
from shop_recs.stores.scoping import unscoped
from tests.api.helpers import event

pytestmark = pytest.mark.django_db

PRODUCTS = "/api/v1/products"
EVENTS = "/api/v1/customers/c1/events"
LISTS = [PRODUCTS, EVENTS]


def bad_param(response, field: str, value: str) -> dict:
    """The single ``details`` entry of a 400 ``invalid_input`` that names ``field`` and ``value``."""
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert error["message"] == f"Invalid query parameter {field!r}: {value!r}."
    [detail] = error["details"]
    assert detail["field"] == field and detail["value"] == value
    return detail


@pytest.fixture
def catalog(store, make_product):
    with unscoped():
        mugs = Category.objects.create(store=store, name="Mugs", path="Home > Kitchen > Mugs")
        garden = Category.objects.create(store=store, name="Garden", path="Garden")
    make_product(store, "MUG", category=mugs, brand="Acme", price=Decimal("5.00"))
    make_product(store, "CUP", category=mugs, brand="Other", price=Decimal("20.00"), in_stock=False)
    make_product(store, "HOSE", category=garden, brand="Acme", price=Decimal("50.00"), is_active=False)
    make_product(store, "FREE", price=None)
    with unscoped():  # updated_at is auto_now: only an UPDATE can date a row in the past
        Product.objects.filter(store=store).exclude(sku="MUG").update(updated_at=datetime(2025, 1, 1, tzinfo=UTC))
        Product.objects.filter(store=store, sku="MUG").update(updated_at=datetime(2025, 6, 1, tzinfo=UTC))


@pytest.fixture
def history(api_client, catalog):
    """c1: views of MUG on March 1 and 2, a purchase of CUP on March 3; c2: one view."""
    rows = [
        event(customer="c1", sku="MUG", timestamp="2025-03-01T10:00:00Z"),
        event(customer="c1", sku="MUG", timestamp="2025-03-02T10:00:00Z"),
        event(
            customer="c1", sku="CUP", type="purchase", timestamp="2025-03-03T10:00:00+02:00", quantity=1, order_id="o1"
        ),
        event(customer="c2", sku="MUG", timestamp="2025-03-02T11:00:00Z"),
    ]
    response = api_client.post("/api/v1/events/batch", rows, format="json")
    assert response.status_code == 201, response.content


def skus(api_client, query: str = "") -> list[str]:
    response = api_client.get(f"{PRODUCTS}?{query}")
    assert response.status_code == 200, response.content
    return sorted(p["sku"] for p in response.json()["results"])


def events(api_client, query: str = "") -> list[tuple[str, str | None]]:
    response = api_client.get(f"{EVENTS}?{query}")
    assert response.status_code == 200, response.content
    return [(row["type"], row["sku"]) for row in response.json()]


# --- refusals: the same on every list endpoint ------------------------------------------------


@pytest.mark.parametrize(
    "path,field,value,reason",
    [
        (PRODUCTS, "active", "maybe", "must be true or false"),
        (PRODUCTS, "in_stock", "yes please", "must be true or false"),
        (PRODUCTS, "updated_since", "2025-13-45", "must be an ISO 8601 date"),
        (PRODUCTS, "updated_since", "yesterday", "must be an ISO 8601 date"),
        (PRODUCTS, "min_price", "cheap", "must be a number"),
        (PRODUCTS, "max_price", "NaN", "must be a number"),
        (PRODUCTS, "min_price", "-1", "must be between 0 and 9999999999.99"),
        (PRODUCTS, "offset", "x", "must be an integer"),
        (PRODUCTS, "offset", "1.5", "must be an integer"),
        (PRODUCTS, "category", "x" * 201, "must be at most 200 characters"),
        (EVENTS, "since", "2025-02-30", "must be an ISO 8601 date"),
        (EVENTS, "until", "03/01/2025", "must be an ISO 8601 date"),
        (EVENTS, "before", "abc", "must be an integer"),
        (EVENTS, "before", "-5", "must be between 0 and"),
        (EVENTS, "type", "teleport", "must be one of: view, search, click, add_to_cart"),
    ],
)
def test_a_bad_filter_value_is_a_400_naming_field_and_value(api_client, history, path, field, value, reason):
    detail = bad_param(api_client.get(path, {field: value}), field, value[:100] + ("…" if len(value) > 100 else ""))
    assert detail["reason"].startswith(reason)


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize("value", ["100000", "1001", "0", "ten", "99999999999999999999"])
def test_a_page_size_outside_1_to_1000_is_a_400_stating_the_maximum(api_client, history, path, value):
    """Refused, not clamped: a client asking for everything must not take 1,000 rows for the whole list."""
    detail = bad_param(api_client.get(path, {"limit": value}), "limit", value)
    if value.isdigit():
        assert detail["reason"] == "must be between 1 and 1000"


def test_every_bad_parameter_is_named_at_once(api_client, catalog):
    response = api_client.get(PRODUCTS, {"active": "maybe", "updated_since": "soon", "brand": "Acme"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"] == "Invalid query parameters 'active', 'updated_since'."
    assert {(d["field"], d["value"]) for d in error["details"]} == {("active", "maybe"), ("updated_since", "soon")}


def test_a_long_bad_value_is_echoed_cut_short(api_client, catalog):
    response = api_client.get(PRODUCTS, {"active": "t" * 5000})
    assert response.json()["error"]["details"][0]["value"] == "t" * 100 + "…"


# --- valid filters narrow the list ------------------------------------------------------------


def test_product_filters_narrow_the_list(api_client, catalog):
    assert skus(api_client) == ["CUP", "FREE", "HOSE", "MUG"]
    assert skus(api_client, "active=true") == ["CUP", "FREE", "MUG"]
    assert skus(api_client, "active=FALSE") == ["HOSE"]
    assert skus(api_client, "active=0") == ["HOSE"]
    assert skus(api_client, "active=Yes&in_stock=no") == ["CUP"]  # what the hand parser took as true stays true
    assert skus(api_client, "in_stock=false") == ["CUP"]
    assert skus(api_client, "category=Home>Kitchen") == ["CUP", "MUG"]  # the subtree, any spacing
    assert skus(api_client, "category=Garden&active=false") == ["HOSE"]
    assert skus(api_client, "brand=Acme") == ["HOSE", "MUG"]
    assert skus(api_client, "min_price=10") == ["CUP", "HOSE"]
    assert skus(api_client, "min_price=5&max_price=20.00") == ["CUP", "MUG"]
    assert skus(api_client, "updated_since=2025-03-01") == ["MUG"]
    assert skus(api_client, "updated_since=2025-06-01T02:00:00%2B02:00") == ["MUG"]  # the same instant
    assert skus(api_client, "updated_since=2025-06-01T00:00:01Z") == []


def test_an_empty_filter_value_means_no_filter(api_client, catalog):
    assert skus(api_client, "active=&in_stock=&updated_since=&min_price=&category=") == ["CUP", "FREE", "HOSE", "MUG"]


def test_filters_and_pagination_combine_in_the_usual_shape(api_client, catalog):
    body = api_client.get(PRODUCTS, {"active": "true", "limit": 2}).json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 3
    assert [p["sku"] for p in body["results"]] == ["CUP", "FREE"]  # ordered by sku
    assert "active=true" in body["next"] and "offset=2" in body["next"]  # the next page keeps the filter
    body = api_client.get(body["next"]).json()
    assert [p["sku"] for p in body["results"]] == ["MUG"] and body["next"] is None


def test_event_filters_narrow_the_list(api_client, history):
    assert events(api_client) == [("purchase", "CUP"), ("view", "MUG"), ("view", "MUG")]
    assert events(api_client, "type=purchase") == [("purchase", "CUP")]
    assert events(api_client, "sku=MUG") == [("view", "MUG"), ("view", "MUG")]
    assert events(api_client, "since=2025-03-02") == [("purchase", "CUP"), ("view", "MUG")]
    assert events(api_client, "since=2025-03-02&until=2025-03-03") == [("view", "MUG")]  # until is exclusive
    # 2025-03-03T10:00+02:00 is 08:00 UTC: a naive bound is UTC.
    assert events(api_client, "until=2025-03-03T08:00:00") == [("view", "MUG"), ("view", "MUG")]
    assert events(api_client, "until=2025-03-03T08:00:01") == [("purchase", "CUP"), ("view", "MUG"), ("view", "MUG")]
    assert events(api_client, "type=view&sku=CUP") == []


def test_event_paging_with_before_and_limit(api_client, history):
    first = [row["id"] for row in api_client.get(EVENTS, {"limit": 2}).json()]
    assert len(first) == 2 and first == sorted(first, reverse=True)  # newest first
    rest = [row["id"] for row in api_client.get(EVENTS, {"limit": 2, "before": first[-1]}).json()]
    assert len(rest) == 1 and rest[0] < first[-1]
    assert len(api_client.get(EVENTS, {"before": 0}).json()) == 3  # 0: no bound, as before


def test_filters_never_reach_another_customer_or_store(api_client, other_api_client, history):
    """c2's view of MUG matches every filter below; c1's list must still leave it out."""
    rows = api_client.get(EVENTS, {"sku": "MUG", "since": "2025-03-02T11:00:00Z"}).json()
    assert rows == []
    assert other_api_client.get(PRODUCTS, {"brand": "Acme"}).json()["count"] == 0


# --- the schema documents the filters ---------------------------------------------------------


def test_the_schema_documents_every_filter(client):
    schema = client.get("/api/schema/?format=json").json()

    def params(path: str) -> dict[str, dict]:
        return {p["name"]: p["schema"] for p in schema["paths"][path]["get"]["parameters"] if p["in"] == "query"}

    products = params(PRODUCTS)
    assert products["active"] == {"type": "boolean"} and products["in_stock"] == {"type": "boolean"}
    assert products["updated_since"] == {"type": "string", "format": "date-time"}
    assert products["min_price"]["type"] == products["max_price"]["type"] == "number"
    assert {"category", "brand"} <= set(products)
    assert products["limit"] == {"type": "integer", "minimum": 1, "maximum": 1000}
    customer_events = params("/api/v1/customers/{external_id}/events")
    assert customer_events["since"]["format"] == customer_events["until"]["format"] == "date-time"
    assert customer_events["before"]["type"] == customer_events["limit"]["type"] == "integer"
    assert "purchase" in customer_events["type"]["enum"] and customer_events["sku"]["type"] == "string"
