"""Boundaries and exact error objects of event and product validation (mutation-testing gaps).

Each test here pins a behaviour a mutant of ``_validate_events`` / ``clean_product_rows`` changed
without any other test noticing (docs/benchmarks.md, "Mutation testing"): the 100/500-character
limits, the rating range 1..5, a free product, ``in_stock`` as a boolean, and the whole
``{index, field, reason}`` objects of docs/api.md, not only their fields.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from shop_recs.activity.models import Event
from shop_recs.activity.services import clean_event_rows
from shop_recs.catalog.models import Product
from shop_recs.catalog.services import InvalidRows, clean_product_rows, normalize_category_path
from tests.api.helpers import TS, count, event

pytestmark = pytest.mark.django_db

NON_EMPTY_100 = "must be a non-empty string of at most 100 characters"


@pytest.fixture
def catalog(store, make_product):
    return [make_product(store, "SKU-1"), make_product(store, "SKU-2")]


def _batch(api_client, rows):
    return api_client.post("/api/v1/events/batch", rows, format="json")


def _details(response) -> list[dict]:
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == "invalid_rows"
    return error["details"]


# --- events: exact error objects ---------------------------------------------------------------------


def test_event_batch_reports_the_exact_error_object_of_each_bad_row(store, api_client, catalog):
    long_bad_ts = "not-a-date-" + "x" * 60
    rows = [
        "not an object",  # 0
        event(session_id=""),  # 1
        event(type="rating"),  # 2: no value
        event(type="rating", value=None),  # 3: explicit null
        event(type="rating", value=7),  # 4
        event(type="purchase"),  # 5: no order_id
        event(context=["list"]),  # 6
        event(query="q" * 501),  # 7
        event(order_id=12),  # 8
        event(timestamp=long_bad_ts),  # 9
        event(type="rating", value="5"),  # 10: not a number
    ]
    assert _details(_batch(api_client, rows)) == [
        {"index": 0, "field": "non_field_errors", "reason": "expected an object"},
        {"index": 1, "field": "session_id", "reason": NON_EMPTY_100},
        {"index": 2, "field": "value", "reason": "rating events need a value from 1 to 5"},
        {"index": 3, "field": "value", "reason": "rating events need a value from 1 to 5"},
        {"index": 4, "field": "value", "reason": "rating must be between 1 and 5"},
        {"index": 5, "field": "order_id", "reason": "required for purchase events"},
        {"index": 6, "field": "context", "reason": "must be an object"},
        {"index": 7, "field": "query", "reason": "must be a string of at most 500 characters"},
        {"index": 8, "field": "order_id", "reason": "must be a string of at most 100 characters"},
        {"index": 9, "field": "timestamp", "reason": f"not an ISO-8601 date-time: {long_bad_ts[:40]!r}"},
        {"index": 10, "field": "value", "reason": "must be a number"},
    ]
    assert count(Event, store=store) == 0


def test_session_id_of_100_characters_is_accepted_101_refused(store, api_client, catalog):
    ok = _batch(api_client, [event(customer=..., session_id="s" * 100)])
    assert ok.status_code == 201, ok.json()
    assert _details(_batch(api_client, [event(customer=..., session_id="s" * 101)])) == [
        {"index": 0, "field": "session_id", "reason": NON_EMPTY_100}
    ]


def test_query_of_500_characters_is_accepted_501_refused(store, api_client, catalog):
    ok = _batch(api_client, [event(type="search", sku=None, query="q" * 500)])
    assert ok.status_code == 201, ok.json()
    assert _details(_batch(api_client, [event(type="search", sku=None, query="q" * 501)])) == [
        {"index": 0, "field": "query", "reason": "must be a string of at most 500 characters"}
    ]


@pytest.mark.parametrize("value", [1, 5, 5.0])
def test_rating_bounds_are_inclusive(store, api_client, catalog, value):
    response = _batch(api_client, [event(type="rating", value=value)])
    assert response.status_code == 201, response.json()


@pytest.mark.parametrize("value", [0.99, 5.01, 6])
def test_rating_outside_1_to_5_is_refused(store, api_client, catalog, value):
    assert _details(_batch(api_client, [event(type="rating", value=value)])) == [
        {"index": 0, "field": "value", "reason": "rating must be between 1 and 5"}
    ]


def test_clean_event_rows_returns_the_cleaned_tuples_and_raises_on_bad_rows():
    cleaned = clean_event_rows([event(type="add_to_cart", quantity=2, timestamp=TS)])
    assert len(cleaned) == 1
    customer, session, etype, sku, value, quantity, order_id, query, ts, context = cleaned[0]
    assert (customer, session, etype, sku, value, quantity, order_id, query, context) == (
        "c1",
        None,
        "add_to_cart",
        "SKU-1",
        2.0,
        2,
        None,
        None,
        None,
    )
    assert ts.isoformat() == "2025-03-01T12:00:00+00:00"
    with pytest.raises(InvalidRows) as exc:
        clean_event_rows([event(), event(type="like")])
    assert exc.value.errors == [
        {
            "index": 1,
            "field": "type",
            "reason": "must be one of: "
            + ", ".join(["view", "search", "click", "add_to_cart", "remove_from_cart", "purchase", "rating"]),
        }
    ]
    with pytest.raises(InvalidRows):
        clean_event_rows([event()] * 3, max_rows=2)


# --- products ------------------------------------------------------------------------------------


def _put(api_client, body):
    return api_client.put("/api/v1/products/MUG-1", body, format="json")


def test_free_product_price_zero_is_accepted_negative_refused(store, api_client):
    response = _put(api_client, {"title": "Free sample", "price": 0})
    assert response.status_code == 201, response.json()
    assert Decimal(response.json()["price"]) == 0
    response = _put(api_client, {"title": "Free sample", "price": "-0.01"})
    assert response.status_code == 400
    assert response.json()["error"]["details"] == [{"field": "price", "reason": "must be >= 0"}]


def test_in_stock_must_be_a_boolean(store, api_client):
    response = _put(api_client, {"title": "Mug", "in_stock": "yes"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_input"
    assert response.json()["error"]["details"] == [{"field": "in_stock", "reason": "must be true or false"}]
    assert count(Product, store=store) == 0
    response = _put(api_client, {"title": "Mug", "in_stock": False})
    assert response.status_code == 201, response.json()
    assert count(Product, store=store, sku="MUG-1", in_stock=False) == 1


def test_cleaned_price_is_a_decimal():
    (row,) = clean_product_rows([{"sku": "A", "title": "t", "price": "9.90"}])
    assert isinstance(row["price"], Decimal) and row["price"] == Decimal("9.90")
    (row,) = clean_product_rows([{"sku": "A", "title": "t", "price": 3}])
    assert isinstance(row["price"], Decimal) and row["price"] == Decimal("3")


def test_category_name_of_200_characters_is_accepted_201_refused():
    assert normalize_category_path("A > " + "b" * 200) == "A > " + "b" * 200
    with pytest.raises(ValueError, match="longer than 200 characters"):
        normalize_category_path("A > " + "b" * 201)


def test_bulk_reports_the_exact_error_object_of_each_bad_row(store, api_client):
    rows = [
        {"sku": "OK", "title": "fine"},  # 0
        {"sku": 5, "title": "x"},  # 1
        {"sku": "S2", "title": "  "},  # 2
        {"sku": "S3", "title": "x", "brand": "b" * 201},  # 3
        {"sku": "S4", "title": "x", "category": 7},  # 4
        {"sku": "S5", "title": "x", "category": "A >  > B"},  # 5
        {"sku": "S6", "title": "x", "price": True},  # 6
        {"sku": "S7", "title": "x", "price": "NaN"},  # 7
        {"sku": "S8", "title": "x", "price": -1},  # 8
        {"sku": "S9", "title": "x", "price": "10000000000"},  # 9
        {"sku": "S10", "title": "x", "price": "1.234"},  # 10
        {"sku": "S/11", "title": "x"},  # 11
        {"sku": "OK", "title": "dup"},  # 12
        {"title": "no sku", "colour": "red"},  # 13
        "not an object",  # 14
        {"sku": "S15", "title": "x", "currency": "EURO", "in_stock": 1, "is_active": "no"},  # 15
        {"sku": "S16", "title": "x", "tags": [1], "attributes": [], "image_url": "ftp://x"},  # 16
    ]
    response = api_client.post("/api/v1/products/bulk", rows, format="json")
    assert _details(response) == [
        {"index": 1, "field": "sku", "reason": "must be a string"},
        {"index": 2, "field": "title", "reason": "must not be blank"},
        {"index": 3, "field": "brand", "reason": "at most 200 characters"},
        {"index": 4, "field": "category", "reason": "must be a path string like 'A > B'"},
        {"index": 5, "field": "category", "reason": "category path has an empty node (use 'A > B > C')"},
        {"index": 6, "field": "price", "reason": "must be a number"},
        {"index": 7, "field": "price", "reason": "must be a number"},
        {"index": 8, "field": "price", "reason": "must be >= 0"},
        {"index": 9, "field": "price", "reason": "must be <= 9999999999.99"},
        {"index": 10, "field": "price", "reason": "at most 2 decimal places"},
        {"index": 11, "field": "sku", "reason": "must not contain '/'"},
        {"index": 12, "field": "sku", "reason": "duplicate of row 0"},
        {"index": 13, "field": "colour", "reason": "unknown field"},
        {"index": 13, "field": "sku", "reason": "this field is required"},
        {"index": 14, "field": "non_field_errors", "reason": "expected an object"},
        {"index": 15, "field": "currency", "reason": "must be a 3-letter code like 'EUR'"},
        {"index": 15, "field": "is_active", "reason": "must be true or false"},
        {"index": 15, "field": "in_stock", "reason": "must be true or false"},
        {"index": 16, "field": "tags", "reason": "must be a list of strings"},
        {"index": 16, "field": "attributes", "reason": "must be an object"},
        {"index": 16, "field": "image_url", "reason": "must start with http:// or https://"},  # issue #14
    ]
    assert count(Product, store=store) == 0


@pytest.mark.parametrize(
    ("body", "code", "reason"),
    [
        ({"sku": "S", "title": "t"}, "invalid_body", "expected a JSON list of products"),
        ([], "empty_batch", "the list is empty"),
        ([{"sku": f"S{i}", "title": "t"} for i in range(3)], "batch_too_large", "at most 2 products per request"),
    ],
)
def test_bulk_body_errors_are_exact(store, api_client, settings, body, code, reason):
    settings.PRODUCT_BATCH_MAX = 2
    response = api_client.post("/api/v1/products/bulk", body, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == code
    assert error["details"] == [{"index": -1, "field": "body", "reason": reason}]
