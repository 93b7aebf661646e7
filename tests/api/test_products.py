"""Product upsert, bulk upsert, list/get and deactivation."""

from __future__ import annotations

import pytest

from shop_recs.catalog.models import Category, Product
from shop_recs.catalog.services import ensure_category_path, upsert_products
from shop_recs.stores.scoping import unscoped
from tests.api.helpers import count, error_details

pytestmark = pytest.mark.django_db


def test_put_creates_then_replaces(store, api_client):
    body = {
        "title": "Blue mug",
        "category": "Home >Kitchen>  Mugs",
        "price": "12.50",
        "currency": "eur",
        "tags": ["blue", "ceramic"],
        "attributes": {"volume_ml": 350},
        "image_url": "https://cdn.example.com/mug.jpg",
    }
    response = api_client.put("/api/v1/products/MUG-1", body, format="json")
    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["category"] == "Home > Kitchen > Mugs"
    assert data["price"] == "12.50"
    assert data["currency"] == "EUR"
    with unscoped():
        paths = list(Category.objects.filter(store=store).values_list("path", "parent__path"))
    assert sorted(paths, key=lambda p: p[0]) == [
        ("Home", None),
        ("Home > Kitchen", "Home"),
        ("Home > Kitchen > Mugs", "Home > Kitchen"),
    ]

    response = api_client.put("/api/v1/products/MUG-1", {"title": "Blue mug v2", "price": 3}, format="json")
    assert response.status_code == 200
    data = response.json()
    assert data["title"] == "Blue mug v2"
    assert data["category"] is None  # PUT replaces the whole product
    assert data["currency"] == "USD"  # the store's default when a price is given
    assert count(Product, store=store) == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("title", None),
        ("title", ""),
        ("price", -1),
        ("price", "abc"),
        ("price", "1.234"),
        ("currency", "EURO"),
        ("currency", "E1"),
        ("tags", "a,b"),
        ("tags", ["ok", 3]),
        ("attributes", [1, 2]),
        ("image_url", "not a url"),
        ("category", "Home >  > Mugs"),
        ("is_active", "yes"),
        ("colour", "red"),
    ],
)
def test_put_rejects_each_bad_field(store, api_client, field, value):
    body = {"title": "Mug", field: value}
    response = api_client.put("/api/v1/products/MUG-1", body, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert [d["field"] for d in error["details"]] == [field]
    assert count(Product, store=store) == 0


def test_bulk_upsert_and_list_filters(store, api_client, make_product):
    make_product(store, "OLD", title="Old", category=None)
    rows = [
        {"sku": "OLD", "title": "Old renamed", "category": "Home > Kitchen"},
        {"sku": "A", "title": "A", "category": "Home > Kitchen > Mugs"},
        {"sku": "B", "title": "B", "category": "Garden", "is_active": False},
    ]
    response = api_client.post("/api/v1/products/bulk", rows, format="json")
    assert response.status_code == 200, response.json()
    assert response.json() == {"created": 2, "updated": 1, "count": 3}

    def skus(query: str) -> list[str]:
        return [p["sku"] for p in api_client.get(f"/api/v1/products{query}").json()["results"]]

    assert skus("") == ["A", "B", "OLD"]
    assert skus("?category=Home > Kitchen") == ["A", "OLD"]  # the subtree
    assert skus("?category=Home > Kitchen > Mugs") == ["A"]
    assert skus("?active=false") == ["B"]
    assert skus("?active=true&limit=1") == ["A"]


def test_bulk_reports_every_bad_row_and_writes_nothing(store, api_client):
    rows = [
        {"sku": "OK", "title": "fine"},
        {"sku": "BAD-1", "title": "x", "price": -5},
        {"sku": "OK", "title": "dup"},
        {"title": "no sku"},
        "not an object",
        {"sku": "BAD-5", "title": "x", "currency": "EURO", "image_url": "ftp:/x"},
    ]
    response = api_client.post("/api/v1/products/bulk", rows, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_rows"
    assert error_details(response) == {
        (1, "price"),
        (2, "sku"),
        (3, "sku"),
        (4, "non_field_errors"),
        (5, "currency"),
        (5, "image_url"),
    }
    assert count(Product, store=store) == 0
    assert count(Category, store=store) == 0


def test_bulk_limits(store, api_client, settings):
    settings.PRODUCT_BATCH_MAX = 2
    rows = [{"sku": f"S{i}", "title": "t"} for i in range(3)]
    response = api_client.post("/api/v1/products/bulk", rows, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "batch_too_large"
    response = api_client.post("/api/v1/products/bulk", {"sku": "S", "title": "t"}, format="json")
    assert response.json()["error"]["code"] == "invalid_body"
    assert api_client.post("/api/v1/products/bulk", [], format="json").json()["error"]["code"] == "empty_batch"


def test_deactivate_keeps_the_product(store, api_client, make_product):
    make_product(store, "MUG-1")
    response = api_client.post("/api/v1/products/MUG-1/deactivate")
    assert response.status_code == 200
    assert response.json()["is_active"] is False
    response = api_client.delete("/api/v1/products/MUG-1")
    assert response.status_code == 200
    assert count(Product, store=store, sku="MUG-1", is_active=False) == 1
    assert api_client.get("/api/v1/products/NOPE").json()["error"]["code"] == "not_found"


def test_services_work_outside_a_request_scope(store):
    """The importer calls these from a management command."""
    category = ensure_category_path(store, "A>B")
    assert category.path == "A > B" and category.parent.path == "A"
    result = upsert_products(store, [{"sku": "X", "title": "X", "price": 1, "category": "A > B > C"}])
    assert (result.created, result.updated) == (1, 0)
    result = upsert_products(store, [{"sku": "X", "title": "X2"}, {"sku": "Y", "title": "Y"}])
    assert (result.created, result.updated) == (1, 1)
    with unscoped():
        assert Product.objects.get(store=store, sku="X").price is None
        assert Product.objects.get(store=store, sku="Y").price is None
