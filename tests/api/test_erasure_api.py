"""The erasure path of the API: erase a customer, delete bad events, merge a session or a duplicate."""

from __future__ import annotations

import json

import pytest

from shop_recs.activity.models import Customer, ErasureRecord, Event
from shop_recs.stores.scoping import unscoped
from tests.api.helpers import count, event

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalog(store, make_product):
    return {sku: make_product(store, sku) for sku in ("SKU-1", "SKU-2")}


def post_events(api_client, rows):
    response = api_client.post("/api/v1/events/batch", rows, format="json")
    assert response.status_code == 201, response.content
    return response


def test_delete_customer_erases_and_records(store, api_client, catalog):
    post_events(api_client, [event(customer="c1", session_id="s1"), event(customer="c2")])
    response = api_client.delete("/api/v1/customers/c1")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["rows"]["activity.Event"] == 1 and body["rows"]["activity.Customer"] == 1
    assert count(Customer, external_id="c1") == 0 and count(Event, customer__external_id="c2") == 1
    with unscoped():
        record = ErasureRecord.objects.get(pk=body["record"])
    assert record.via == "api" and record.api_key_id is not None and record.store_id == store.pk
    # A retry: the customer is gone.
    again = api_client.delete("/api/v1/customers/c1")
    assert again.status_code == 404 and again.json()["error"]["code"] == "not_found"


def test_delete_customer_is_store_scoped(store, api_client, other_api_client, catalog):
    post_events(api_client, [event(customer="c1")])
    response = other_api_client.delete("/api/v1/customers/c1")
    assert response.status_code == 404
    assert count(Customer, external_id="c1") == 1 and count(Event) == 1
    assert count(ErasureRecord) == 0


def test_list_and_delete_bad_events(store, api_client, catalog):
    post_events(api_client, [event(customer="c1", sku="SKU-2"), event(customer="c2")])
    # A purchase the validation refuses today, stored before it did (old data): written directly.
    with unscoped():
        c1 = Customer.objects.get(external_id="c1")
        Event.objects.create(
            store=store,
            customer=c1,
            product=catalog["SKU-1"],
            event_type="purchase",
            value=1e30,
            quantity=2,
            order_id="o1",
            timestamp=Event.objects.get(customer=c1).timestamp,
        )
    listed = api_client.get("/api/v1/customers/c1/events")
    assert listed.status_code == 200
    rows = listed.json()
    assert len(rows) == 2
    bad = next(r for r in rows if r["type"] == "purchase")
    assert bad["value"] == 1e30 and bad["sku"] == "SKU-1"
    other = count(Event, customer__external_id="c2")
    response = api_client.delete(f"/api/v1/customers/c1/events?ids={bad['id']}")
    assert response.status_code == 200, response.content
    assert response.json()["rows"]["activity.Event"] == 1
    assert [r["id"] for r in api_client.get("/api/v1/customers/c1/events").json()] == [
        r["id"] for r in rows if r["id"] != bad["id"]
    ]
    assert count(Event, customer__external_id="c2") == other
    with unscoped():
        assert ErasureRecord.objects.get(pk=response.json()["record"]).kind == "delete_events"


@pytest.mark.parametrize("ids", ["", "abc", "1,x", "1;2", "%C2%B2", "99999999999999999999"])
def test_delete_events_refuses_bad_ids(store, api_client, catalog, ids):
    post_events(api_client, [event(customer="c1")])
    response = api_client.delete(f"/api/v1/customers/c1/events?ids={ids}")
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == "ids"
    assert count(Event) == 1


def test_delete_events_of_another_customer_deletes_nothing(store, api_client, other_api_client, catalog):
    post_events(api_client, [event(customer="c1"), event(customer="c2")])
    with unscoped():
        theirs = Event.objects.get(customer__external_id="c2").pk
        mine = Event.objects.get(customer__external_id="c1").pk
    response = api_client.delete(f"/api/v1/customers/c1/events?ids={mine},{theirs}")
    assert response.status_code == 404 and str(theirs) in response.json()["error"]["message"]
    assert count(Event) == 2
    # Another store's key cannot reach the customer at all.
    assert other_api_client.delete(f"/api/v1/customers/c1/events?ids={mine}").status_code == 404
    assert other_api_client.get("/api/v1/customers/c1/events").status_code == 404
    assert count(Event) == 2


def test_merge_an_anonymous_session(store, api_client, catalog):
    post_events(
        api_client,
        [
            event(customer="c1"),
            event(customer=..., session_id="anon-7", sku="SKU-2"),
            event(customer=..., session_id="anon-7", type="purchase", value=5.0, quantity=1, order_id="o9"),
        ],
    )
    response = api_client.post("/api/v1/customers/c1/merge", {"from": "anon-7"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["merged"] is True and response.json()["rows"]["activity.Event"] == 2
    assert count(Event, customer__external_id="c1") == 3
    assert count(Event, customer__isnull=True) == 0
    # A second call finds nothing left and changes nothing.
    again = api_client.post("/api/v1/customers/c1/merge", {"from": "anon-7"}, format="json")
    assert again.status_code == 200 and again.json()["merged"] is False
    assert set(again.json()["rows"].values()) == {0} and again.json()["record"] is None
    assert count(Event, customer__external_id="c1") == 3
    assert count(ErasureRecord, kind="merge") == 1  # the no-op is not recorded either


def test_merge_a_duplicate_customer_with_an_idempotency_key(store, api_client, catalog):
    post_events(api_client, [event(customer="c1"), event(customer="dup", sku="SKU-2"), event(customer="dup")])
    headers = {"HTTP_IDEMPOTENCY_KEY": "merge-1"}
    body = json.dumps({"from": "dup"})
    first = api_client.post("/api/v1/customers/c1/merge", body, content_type="application/json", **headers)
    assert first.status_code == 200 and first.json()["rows"]["activity.Event"] == 2
    assert count(Customer, external_id="dup") == 0 and count(Event, customer__external_id="c1") == 3
    replay = api_client.post("/api/v1/customers/c1/merge", body, content_type="application/json", **headers)
    assert replay.status_code == 200 and replay.json() == first.json()
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert count(ErasureRecord, kind="merge") == 1
    # The same key for another customer is another request, not a replay of this one.
    post_events(api_client, [event(customer="c2")])
    other = api_client.post("/api/v1/customers/c2/merge", body, content_type="application/json", **headers)
    assert other.status_code == 200 and other.json()["merged"] is False


@pytest.mark.parametrize(
    "body",
    [{}, {"from": ""}, {"from": 5}, {"from": "x" * 101}, [], {"from": None}],
)
def test_merge_refuses_a_bad_body(store, api_client, catalog, body):
    post_events(api_client, [event(customer="c1")])
    response = api_client.post("/api/v1/customers/c1/merge", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_input"


def test_merge_into_itself_or_an_unknown_or_foreign_customer(store, api_client, other_api_client, catalog):
    post_events(api_client, [event(customer="c1"), event(customer="dup")])
    itself = api_client.post("/api/v1/customers/c1/merge", {"from": "c1"}, format="json")
    assert itself.status_code == 400
    assert api_client.post("/api/v1/customers/nobody/merge", {"from": "dup"}, format="json").status_code == 404
    foreign = other_api_client.post("/api/v1/customers/c1/merge", {"from": "dup"}, format="json")
    assert foreign.status_code == 404
    assert count(Customer, external_id="dup") == 1 and count(ErasureRecord) == 0


def test_erasure_deletes_the_stored_merge_answers(store, api_client, catalog):
    """Merge answers kept for Idempotency-Key retries are keyed by a hash of the customer; erasing
    the customer deletes them too."""
    from shop_recs.api.models import IdempotencyRecord

    post_events(api_client, [event(customer="c1"), event(customer=..., session_id="s9")])
    api_client.post("/api/v1/customers/c1/merge", {"from": "s9"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert count(IdempotencyRecord) == 1
    assert api_client.delete("/api/v1/customers/c1").json()["rows"]["api.IdempotencyRecord"] == 1
    assert count(IdempotencyRecord) == 0


def test_schema_documents_the_erasure_path(client):
    schema = json.loads(client.get("/api/schema/", HTTP_ACCEPT="application/json").content)
    paths = schema["paths"]
    assert "delete" in paths["/api/v1/customers/{external_id}"]
    assert {"get", "delete"} <= set(paths["/api/v1/customers/{external_id}/events"])
    merge = paths["/api/v1/customers/{external_id}/merge"]["post"]
    assert "Idempotency-Key" in {p["name"] for p in merge["parameters"]}
    assert "from" in schema["components"]["schemas"]["MergeInputRequest"]["properties"]
