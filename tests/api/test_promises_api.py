"""Promises of docs/api.md hit over the API: a reused Idempotency-Key with a changed body on
``POST /products/bulk``, and the 5-minute clock-skew allowance for event timestamps."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from shop_recs.activity.models import Customer, Event
from shop_recs.api.models import IdempotencyRecord
from shop_recs.catalog.models import Product
from shop_recs.stores.scoping import unscoped
from tests.api.helpers import count, event

pytestmark = pytest.mark.django_db


def post(client, url, body, key=None):
    extra = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client.post(url, json.dumps(body), content_type="application/json", **extra)


def test_products_bulk_same_key_changed_body_is_422_and_writes_nothing(store, api_client):
    first = post(api_client, "/api/v1/products/bulk", [{"sku": "A", "title": "Blue mug", "price": 5}], "sync-1")
    assert first.status_code == 200
    assert first.json() == {"created": 1, "updated": 0, "count": 1}

    changed = [{"sku": "A", "title": "Red mug", "price": 7}, {"sku": "B", "title": "New"}]
    response = post(api_client, "/api/v1/products/bulk", changed, "sync-1")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert "Idempotent-Replayed" not in response
    with unscoped():
        assert list(Product.objects.filter(store=store).values_list("sku", "title", "price")) == [("A", "Blue mug", 5)]
        assert IdempotencyRecord.objects.filter(store=store).count() == 1

    # A different key is a different request: the changed body is written then.
    again = post(api_client, "/api/v1/products/bulk", changed, "sync-2")
    assert again.json() == {"created": 1, "updated": 1, "count": 2}


def test_products_bulk_keys_are_per_store(store, api_client, other_store, other_api_client):
    """Keys are scoped per store: the same key in another store is not a reuse."""
    assert post(api_client, "/api/v1/products/bulk", [{"sku": "A", "title": "x"}], "k").status_code == 200
    other = post(other_api_client, "/api/v1/products/bulk", [{"sku": "Z", "title": "y"}], "k")
    assert other.json() == {"created": 1, "updated": 0, "count": 1}
    assert "Idempotent-Replayed" not in other
    assert count(Product, store=other_store, sku="Z") == 1


def _ts(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat()


@pytest.mark.parametrize("url", ["/api/v1/events", "/api/v1/events/batch"])
def test_event_four_minutes_ahead_is_accepted(store, api_client, make_product, url):
    make_product(store, "SKU-1")
    row = event(timestamp=_ts(timedelta(minutes=4)))
    response = post(api_client, url, [row] if url.endswith("batch") else row)
    assert response.status_code == 201, response.content
    assert response.json() == {"accepted": 1}
    assert count(Event, store=store) == 1


@pytest.mark.parametrize("url", ["/api/v1/events", "/api/v1/events/batch"])
def test_event_six_minutes_ahead_is_refused(store, api_client, make_product, url):
    make_product(store, "SKU-1")
    row = event(timestamp=_ts(timedelta(minutes=6)))
    response = post(api_client, url, [row] if url.endswith("batch") else row)
    assert response.status_code == 400
    error = response.json()["error"]
    if url.endswith("batch"):
        assert error["code"] == "invalid_rows"
        assert error["details"] == [{"index": 0, "field": "timestamp", "reason": "is in the future"}]
    else:
        assert error["code"] == "invalid_input"
        assert error["details"] == [{"field": "timestamp", "reason": "is in the future"}]
    assert count(Event, store=store) == 0
    assert count(Customer, store=store) == 0


def test_clock_skew_allowance_follows_the_setting(store, api_client, make_product, settings):
    make_product(store, "SKU-1")
    settings.EVENT_FUTURE_TOLERANCE_SECONDS = 60
    response = post(api_client, "/api/v1/events", event(timestamp=_ts(timedelta(minutes=2))))
    assert response.status_code == 400
    assert response.json()["error"]["details"] == [{"field": "timestamp", "reason": "is in the future"}]
    settings.EVENT_FUTURE_TOLERANCE_SECONDS = 600
    assert post(api_client, "/api/v1/events", event(timestamp=_ts(timedelta(minutes=8)))).status_code == 201
