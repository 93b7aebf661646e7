"""Idempotency-Key on event and product bulk writes."""

from __future__ import annotations

import json

import pytest

from shop_recs.activity.models import Customer, Event
from shop_recs.api.models import IdempotencyRecord
from shop_recs.catalog.models import Product
from tests.api.helpers import count, event

pytestmark = pytest.mark.django_db


def post(client, url, body, key):
    return client.post(url, json.dumps(body), content_type="application/json", HTTP_IDEMPOTENCY_KEY=key)


@pytest.mark.parametrize("url", ["/api/v1/events/batch", "/api/v1/events"])
def test_retry_replays_the_first_answer(store, api_client, make_product, url):
    make_product(store, "SKU-1")
    body = [event(), event(customer="c2")] if url.endswith("batch") else event()
    first = post(api_client, url, body, "k-1")
    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first
    n = count(Event, store=store)
    second = post(api_client, url, body, "k-1")
    assert second.status_code == first.status_code
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    assert count(Event, store=store) == n
    assert count(Customer, store=store) == n

    other = post(api_client, url, [event(customer="c3")] if url.endswith("batch") else event(customer="c3"), "k-1")
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert count(Event, store=store) == n


def test_product_bulk_is_idempotent(store, api_client):
    body = [{"sku": "A", "title": "A"}]
    first = post(api_client, "/api/v1/products/bulk", body, "p-1")
    assert first.json() == {"created": 1, "updated": 0, "count": 1}
    second = post(api_client, "/api/v1/products/bulk", body, "p-1")
    assert second.json() == first.json()  # not {"updated": 1}: the first answer, replayed
    assert second["Idempotent-Replayed"] == "true"
    assert count(Product, store=store) == 1


def test_failed_requests_are_not_stored(store, api_client, make_product):
    body = [event(sku="LATER")]
    first = post(api_client, "/api/v1/events/batch", body, "k-2")
    assert first.status_code == 400
    assert count(IdempotencyRecord, store=store) == 0
    make_product(store, "LATER")  # the catalog catches up; the same retry now succeeds
    second = post(api_client, "/api/v1/events/batch", body, "k-2")
    assert second.status_code == 201
    assert "Idempotent-Replayed" not in second
    assert count(Event, store=store) == 1


def test_keys_are_per_store_and_per_endpoint(store, other_store, api_client, other_api_client, make_product):
    make_product(store, "SKU-1")
    make_product(other_store, "SKU-1")
    assert post(api_client, "/api/v1/events/batch", [event()], "same").status_code == 201
    response = post(other_api_client, "/api/v1/events/batch", [event()], "same")
    assert response.status_code == 201 and "Idempotent-Replayed" not in response
    assert post(api_client, "/api/v1/events", event(), "same").status_code == 201
    assert count(Event) == 3


def test_bad_key(store, api_client, make_product):
    make_product(store, "SKU-1")
    response = post(api_client, "/api/v1/events", event(), "x" * 201)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_idempotency_key"
    assert count(Event, store=store) == 0


def test_concurrent_duplicate_replays_instead_of_double_writing(store, api_client, make_product, monkeypatch):
    """Simulate the race: the record appears (committed by a twin request) after our lookup."""
    from shop_recs.api import idempotency

    make_product(store, "SKU-1")
    body = [event()]
    first = post(api_client, "/api/v1/events/batch", body, "race")
    real_find = idempotency._find
    lookups = {"n": 0}

    def first_lookup_misses(*args):
        # The first lookup misses (the twin has not committed yet); the insert then hits the
        # unique constraint, and the lookup after the IntegrityError finds the twin's record.
        lookups["n"] += 1
        return None if lookups["n"] == 1 else real_find(*args)

    monkeypatch.setattr(idempotency, "_find", first_lookup_misses)
    second = post(api_client, "/api/v1/events/batch", body, "race")
    assert second.status_code == 201
    assert second["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert count(Event, store=store) == 1
    assert lookups["n"] == 2
