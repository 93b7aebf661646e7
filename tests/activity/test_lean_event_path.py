"""The lean ``POST /events`` path (no DRF, one statement, PostgreSQL): it stores exactly what the full
path stores, answers the same, and hands every refusal and every repeated Idempotency-Key to the full
path, so errors, codes and replays are the full path's."""

from __future__ import annotations

import pytest

from shop_recs.activity import api_views
from shop_recs.activity.models import Customer, Event
from shop_recs.activity.services import ingest_events
from shop_recs.api.models import IdempotencyRecord
from shop_recs.catalog.services import upsert_products
from shop_recs.stores.scoping import unscoped
from tests.conftest import require_postgres

API = "/api/v1/events"
COLUMNS = (
    "customer__external_id",
    "session_id",
    "event_type",
    "product__sku",
    "value",
    "quantity",
    "order_id",
    "query",
    "timestamp",
    "context",
)

EVENTS = [
    {"customer": "lean-1", "type": "view", "sku": "P1", "timestamp": "2024-06-03T12:00:00Z"},
    {"customer": "lean-1", "type": "add_to_cart", "sku": "P2", "timestamp": "2024-06-03T12:01:00+02:00"},
    {
        "customer": "lean-2",
        "session_id": "s-9",
        "type": "purchase",
        "sku": "P1",
        "value": 12.5,
        "quantity": 2,
        "order_id": "o-1",
        "timestamp": "2024-06-03T12:02:00.123456Z",
        "context": {"page": "home", "ab": [1, 2]},
    },
    {"session_id": "anon-1", "type": "search", "query": "blue mug", "timestamp": "2024-06-03T12:03:00Z"},
    {"customer": "lean-3", "type": "rating", "sku": "P3", "value": 4, "timestamp": "2024-06-03T12:04:00Z"},
]


@pytest.fixture
def catalog(store):
    upsert_products(store, [{"sku": f"P{i}", "title": f"Product {i}", "price": 10} for i in range(1, 4)])


@pytest.fixture
def lean_only(monkeypatch):
    """Fail loudly if the full (DRF) path is taken: the lean path must have answered."""

    def full_path(*args, **kwargs):
        raise AssertionError("the full path answered")

    monkeypatch.setattr(api_views, "ingest_events", full_path)


def stored(store) -> list[tuple]:
    with unscoped():
        return list(Event.objects.filter(store=store).order_by("timestamp", "pk").values_list(*COLUMNS))


@pytest.mark.django_db(transaction=True)
def test_lean_path_stores_exactly_what_the_full_path_stores(api_client, store, catalog, lean_only, monkeypatch):
    require_postgres()
    for event in EVENTS:
        r = api_client.post(API, event, format="json")
        assert r.status_code == 201, r.content
        assert r.json() == {"accepted": 1}
        assert r["Allow"] == "POST, OPTIONS" and r["Vary"].startswith("Accept")
    lean_rows = stored(store)
    assert len(lean_rows) == len(EVENTS)
    with unscoped():
        Event.objects.filter(store=store).delete()
        Customer.objects.filter(store=store).delete()
    monkeypatch.undo()
    ingest_events(store, EVENTS)
    assert stored(store) == lean_rows
    with unscoped():
        assert Customer.objects.filter(store=store).count() == 3


@pytest.mark.django_db(transaction=True)
def test_refusals_are_the_full_paths_and_write_nothing(api_client, store, catalog):
    require_postgres()
    r = api_client.post(
        API, {"customer": "x", "type": "view", "sku": "NOPE", "timestamp": "2024-06-03T12:00:00Z"}, format="json"
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_input"
    assert r.json()["error"]["details"] == [{"field": "sku", "reason": "unknown product 'NOPE'"}]
    r = api_client.post(API, {"customer": "x", "type": "like", "sku": "P1", "timestamp": "2024-06-03"}, format="json")
    assert r.status_code == 400
    fields = {d["field"] for d in r.json()["error"]["details"]}
    assert fields == {"type", "timestamp"}
    r = api_client.post(
        API,
        {"customer": "x", "type": "rating", "sku": "P1", "value": 9, "timestamp": "2024-06-03T12:00:00Z"},
        format="json",
    )
    assert r.json()["error"]["details"] == [{"field": "value", "reason": "rating must be between 1 and 5"}]
    r = api_client.post(API, b"[1, 2", content_type="application/json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "parse_error"
    r = api_client.post(API, [EVENTS[0]], format="json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_body"
    with unscoped():
        assert not Event.objects.filter(store=store).exists()
        assert not Customer.objects.filter(store=store, external_id="x").exists()  # an unknown sku creates nobody


@pytest.mark.django_db(transaction=True)
def test_idempotency_key_on_the_lean_path(api_client, store, catalog, lean_only):
    require_postgres()
    event = EVENTS[0]
    first = api_client.post(API, event, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == 201 and "Idempotent-Replayed" not in first
    with unscoped():
        record = IdempotencyRecord.objects.get(store=store, key="k-1")
    assert (record.endpoint, record.response_status, record.response_body) == ("events", 201, {"accepted": 1})


@pytest.mark.django_db(transaction=True)
def test_a_repeated_key_replays_through_the_full_path(api_client, store, catalog):
    require_postgres()
    event = EVENTS[0]
    assert api_client.post(API, event, format="json", HTTP_IDEMPOTENCY_KEY="k-2").status_code == 201
    again = api_client.post(API, event, format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.json() == {"accepted": 1}
    other = api_client.post(API, EVENTS[1], format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"
    assert len(stored(store)) == 1


@pytest.mark.django_db
def test_inside_a_transaction_the_full_path_answers_the_same(api_client, store, catalog):
    # The lean statement must be its own committed transaction; inside one (this test) the full path runs.
    r = api_client.post(API, EVENTS[0], format="json")
    assert r.status_code == 201 and r.json() == {"accepted": 1}
    assert len(stored(store)) == 1


# --- POST /events/batch ---------------------------------------------------------------------------

BATCH = f"{API}/batch"


@pytest.mark.django_db(transaction=True)
def test_lean_batch_stores_what_the_full_path_stores(api_client, store, catalog, lean_only, monkeypatch):
    require_postgres()
    r = api_client.post(BATCH, EVENTS, format="json", HTTP_IDEMPOTENCY_KEY="b-1")
    assert r.status_code == 201 and r.json() == {"accepted": len(EVENTS)}
    assert r["Allow"] == "POST, OPTIONS"
    lean_rows = stored(store)
    with unscoped():
        record = IdempotencyRecord.objects.get(store=store, key="b-1")
        assert (record.endpoint, record.response_status, record.response_body) == ("events.batch", 201, {"accepted": 5})
        Event.objects.filter(store=store).delete()
        Customer.objects.filter(store=store).delete()
    monkeypatch.undo()
    ingest_events(store, EVENTS)
    assert stored(store) == lean_rows


@pytest.mark.django_db(transaction=True)
def test_lean_batch_refusals_and_replays_are_the_full_paths(api_client, store, catalog):
    require_postgres()
    bad = [EVENTS[0], {**EVENTS[1], "sku": "NOPE"}, {**EVENTS[2], "quantity": 0}]
    r = api_client.post(BATCH, bad, format="json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_rows"
    assert [(d["index"], d["field"]) for d in r.json()["error"]["details"]] == [(1, "sku"), (2, "quantity")]
    assert stored(store) == []
    assert api_client.post(BATCH, EVENTS[:2], format="json", HTTP_IDEMPOTENCY_KEY="b-2").status_code == 201
    again = api_client.post(BATCH, EVENTS[:2], format="json", HTTP_IDEMPOTENCY_KEY="b-2")
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true" and again.json() == {"accepted": 2}
    reused = api_client.post(BATCH, EVENTS[:1], format="json", HTTP_IDEMPOTENCY_KEY="b-2")
    assert reused.status_code == 422 and reused.json()["error"]["code"] == "idempotency_key_reused"
    assert len(stored(store)) == 2
