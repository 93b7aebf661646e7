"""Event ingestion: validation rules, batches, customer auto-creation."""

from __future__ import annotations

import pytest

from shop_recs.activity.models import Customer, Event
from shop_recs.stores.scoping import unscoped
from tests.api.helpers import TS, count, error_details, event, future_ts

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalog(store, make_product):
    return [make_product(store, "SKU-1"), make_product(store, "SKU-2")]


def test_single_event_is_stored_and_creates_the_customer(store, api_client, catalog):
    response = api_client.post(
        "/api/v1/events", event(context={"list_id": "home"}, timestamp="2025-03-01T14:00:00+02:00"), format="json"
    )
    assert response.status_code == 201, response.json()
    assert response.json() == {"accepted": 1}
    with unscoped():
        ev = Event.objects.get(store=store)
        assert ev.customer.external_id == "c1" and ev.customer.store_id == store.pk
        assert ev.product_id == catalog[0].pk
        assert ev.context == {"list_id": "home"}
        assert ev.timestamp.isoformat() == "2025-03-01T12:00:00+00:00"


def test_batch_of_all_types(store, api_client, catalog, make_customer):
    make_customer(store, "known")
    rows = [
        event(customer="known"),
        event(customer=..., session_id="s-1", type="click", sku="SKU-2"),
        event(type="search", sku=None, query="blue mug"),
        event(type="add_to_cart", quantity=2),
        event(type="remove_from_cart"),
        event(type="purchase", order_id="o-1", value=9.5, quantity=3),
        event(type="rating", value=4),
    ]
    response = api_client.post("/api/v1/events/batch", rows, format="json")
    assert response.status_code == 201, response.json()
    assert response.json() == {"accepted": 7}
    with unscoped():
        got = {
            e.event_type: (e.value, e.quantity, e.order_id, e.query, e.session_id)
            for e in Event.objects.filter(store=store)
        }
        assert sorted(Customer.objects.filter(store=store).values_list("external_id", flat=True)) == ["c1", "known"]
    assert got["add_to_cart"] == (2.0, 2, "", "", "")
    assert got["remove_from_cart"] == (1.0, 1, "", "", "")
    assert got["purchase"] == (9.5, 3, "o-1", "", "")
    assert got["rating"][0] == 4.0
    assert got["search"][3] == "blue mug"
    assert got["click"][4] == "s-1"
    assert count(Event, store=store, customer__isnull=True) == 1


@pytest.mark.parametrize(
    ("row", "field"),
    [
        (event(type="like"), "type"),
        (event(type=None), "type"),
        (event(customer=...), "customer"),
        (event(customer=""), "customer"),
        (event(customer=12), "customer"),
        (event(session_id="x" * 101), "session_id"),
        (event(sku=...), "sku"),
        (event(sku=["SKU-1"]), "sku"),
        (event(type="search", query="mug"), "sku"),
        (event(type="search", sku=None), "query"),
        (event(type="search", sku=None, query="  "), "query"),
        (event(value="5"), "value"),
        (event(value=True), "value"),
        (event(quantity=0), "quantity"),
        (event(quantity=1.5), "quantity"),
        (event(type="add_to_cart", quantity=-1), "quantity"),
        (event(type="purchase"), "order_id"),
        (event(type="purchase", order_id="o", value=-1), "value"),
        (event(type="rating"), "value"),
        (event(type="rating", value=6), "value"),
        (event(type="rating", value=0), "value"),
        (event(timestamp=...), "timestamp"),
        (event(timestamp="2025-03-01T12:00:00"), "timestamp"),  # naive
        (event(timestamp="yesterday"), "timestamp"),
        (event(timestamp=1700000000), "timestamp"),
        (event(timestamp=future_ts()), "timestamp"),
        (event(context="list"), "context"),
        (event(colour="red"), "colour"),
        (event(sku="NOPE"), "sku"),
    ],
)
def test_each_rule_rejects_the_event(store, api_client, catalog, row, field):
    response = api_client.post("/api/v1/events/batch", [event(), row], format="json")
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == "invalid_rows"
    assert {(d["index"], d["field"]) for d in error["details"]} == {(1, field)}
    assert count(Event, store=store) == 0
    assert count(Customer, store=store) == 0
    # The single endpoint applies the same rules.
    response = api_client.post("/api/v1/events", row, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_input"
    assert [d["field"] for d in response.json()["error"]["details"]] == [field]


def test_batch_reports_all_bad_rows_and_writes_nothing(store, api_client, catalog):
    rows = [
        event(customer="new-1"),
        event(sku="X-1"),
        event(timestamp="2025-03-01T12:00:00"),
        event(customer="new-2"),
        event(type="rating", value=9, sku="X-2"),
        "oops",
    ]
    response = api_client.post("/api/v1/events/batch", rows, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_rows"
    assert error_details(response) == {(1, "sku"), (2, "timestamp"), (4, "value"), (4, "sku"), (5, "non_field_errors")}
    assert [d["index"] for d in error["details"]] == sorted(d["index"] for d in error["details"])
    reasons = {d["reason"] for d in error["details"] if d["field"] == "sku"}
    assert reasons == {"unknown product 'X-1'", "unknown product 'X-2'"}
    assert count(Event, store=store) == 0
    assert count(Customer, store=store) == 0  # valid rows' customers are not created either


def test_batch_shape_errors(store, api_client, catalog, settings):
    response = api_client.post("/api/v1/events/batch", event(), format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_body"
    assert api_client.post("/api/v1/events/batch", [], format="json").json()["error"]["code"] == "empty_batch"
    settings.EVENT_BATCH_MAX = 3
    response = api_client.post("/api/v1/events/batch", [event()] * 4, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "batch_too_large"
    response = api_client.post("/api/v1/events/batch", b"[{", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"
    assert count(Event, store=store) == 0


def test_many_rows_and_many_new_customers(store, api_client, catalog):
    rows = [event(customer=f"c{i % 700}", sku=f"SKU-{1 + i % 2}", timestamp=TS) for i in range(3000)]
    response = api_client.post("/api/v1/events/batch", rows, format="json")
    assert response.status_code == 201
    assert count(Event, store=store) == 3000
    assert count(Customer, store=store) == 700


def test_customer_upserts(store, api_client, make_customer):
    make_customer(store, "old", country="FR")
    response = api_client.put(
        "/api/v1/customers/c-9", {"country": "DE", "age_band": "25-34", "signup_date": "2024-05-31"}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["signup_date"] == "2024-05-31"
    response = api_client.put("/api/v1/customers/c-9", {"gender": "f"}, format="json")
    assert response.status_code == 200
    assert response.json()["country"] == ""  # replaced
    response = api_client.put("/api/v1/customers/c-9", {"signup_date": "31/05/2024"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"] == [
        {"field": "signup_date", "reason": "must be a date like '2024-05-31'"}
    ]

    rows = [{"external_id": "old", "country": "IT"}, {"external_id": "n1"}, {"external_id": "n2", "gender": "x" * 20}]
    response = api_client.post("/api/v1/customers/bulk", rows, format="json")
    assert response.status_code == 400
    assert error_details(response) == {(2, "gender")}
    response = api_client.post("/api/v1/customers/bulk", rows[:2], format="json")
    assert response.json() == {"created": 1, "updated": 1}
    assert api_client.get("/api/v1/customers/old").json()["country"] == "IT"
    assert count(Customer, store=store) == 3
