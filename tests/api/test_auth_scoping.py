"""Authentication and store isolation of the REST API."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from shop_recs.activity.models import Customer, Event
from shop_recs.catalog.models import Product
from shop_recs.stores.models import ApiKey
from tests.api.helpers import count, event

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("headers", "code", "message"),
    [
        ({}, "not_authenticated", "Authentication credentials were not provided."),
        ({"HTTP_AUTHORIZATION": "Bearer sr_nope"}, "authentication_failed", "Malformed API key."),  # no secret part
        (
            {"HTTP_AUTHORIZATION": "Token sr_abc_def"},  # wrong scheme
            "authentication_failed",
            "Use 'Authorization: Bearer <API key>'.",
        ),
        ({"HTTP_AUTHORIZATION": "Bearer sr_deadbeef_wrongsecret"}, "authentication_failed", "Invalid API key."),
        ({"HTTP_X_API_KEY": "not-a-key"}, "authentication_failed", "Malformed API key."),
    ],
)
@pytest.mark.parametrize(
    "url",
    ["/api/v1/products", "/api/v1/recommendations/customer/c1", "/api/v1/popular", "/api/v1/search?q=mug"],
)
def test_missing_or_bad_keys_are_rejected(store, headers, code, message, url):
    """docs/api.md: a missing key is ``401 not_authenticated``; a malformed, unknown key is
    ``401 authentication_failed`` (write endpoints and the serving GETs alike)."""
    client = APIClient()
    response = client.get(url, **headers)
    assert response.status_code == 401
    assert response.json() == {"error": {"code": code, "message": message, "details": None}}
    assert response["WWW-Authenticate"] == "Bearer"
    response = client.post("/api/v1/events", event(), format="json", **headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == code
    assert count(Event) == 0


def test_revoked_key_is_rejected(store, make_product):
    make_product(store, "SKU-1")
    key, raw = ApiKey.generate(store, "to revoke")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/v1/products").status_code == 200
    key.revoke()
    response = client.get("/api/v1/products")
    assert response.status_code == 401
    assert response.json()["error"] == {
        "code": "authentication_failed",
        "message": "This API key has been revoked.",
        "details": None,
    }
    # The write endpoints refuse it at once too (docs/api.md), and nothing is written.
    response = client.post("/api/v1/events", event(), format="json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
    assert count(Event, store=store) == 0


def test_x_api_key_header_is_accepted(store):
    _, raw = ApiKey.generate(store, "x")
    assert APIClient().get("/api/v1/products", HTTP_X_API_KEY=raw).status_code == 200


def test_store_b_cannot_read_or_write_store_a(store, other_store, api_client, other_api_client, make_product):
    make_product(store, "A-ONLY", title="Alpha mug")
    make_product(store, "SAME", title="Alpha version")
    make_product(other_store, "SAME", title="Beta version")

    # Reads: B sees only its own rows.
    skus_b = [p["sku"] for p in other_api_client.get("/api/v1/products").json()["results"]]
    assert skus_b == ["SAME"]
    assert other_api_client.get("/api/v1/products/A-ONLY").status_code == 404
    assert other_api_client.get("/api/v1/products/SAME").json()["title"] == "Beta version"
    assert api_client.get("/api/v1/products/SAME").json()["title"] == "Alpha version"

    # Writes: B deactivating or upserting A's sku never touches A's row.
    assert other_api_client.post("/api/v1/products/A-ONLY/deactivate").status_code == 404
    assert other_api_client.delete("/api/v1/products/A-ONLY").status_code == 404
    other_api_client.put("/api/v1/products/SAME", {"title": "Beta v2"}, format="json")
    assert api_client.get("/api/v1/products/SAME").json()["title"] == "Alpha version"
    assert count(Product, store=store, is_active=True) == 2

    # Events: B cannot reference A's products.
    response = other_api_client.post("/api/v1/events/batch", [event(sku="A-ONLY")], format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["reason"] == "unknown product 'A-ONLY'"
    # An event in B on the shared sku lands on B's product and B's customer only.
    assert (
        other_api_client.post("/api/v1/events", event(sku="SAME", customer="shared"), format="json").status_code == 201
    )
    assert count(Event, store=other_store, product__store=other_store) == 1
    assert count(Event, store=store) == 0
    assert count(Customer, store=store) == 0

    # Customers: same external id in two stores are distinct rows.
    api_client.put("/api/v1/customers/shared", {"country": "DE"}, format="json")
    assert other_api_client.get("/api/v1/customers/shared").json()["country"] == ""
    assert api_client.get("/api/v1/customers/shared").json()["country"] == "DE"
    assert count(Customer, external_id="shared") == 2


def test_drf_and_hot_path_share_one_key_check(store):
    """DRF's authenticator goes through ``check_api_key``: the key it read is the hot path's cached key."""
    from shop_recs.api import auth

    key, raw = ApiKey.generate(store, "shared")
    assert APIClient().get("/api/v1/products", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 200
    assert key.prefix in auth._known_keys
    assert auth.check_api_key(raw).status is auth.KeyStatus.OK
    assert auth.check_api_key(f"sr_{key.prefix}_wrong").status is auth.KeyStatus.INVALID
    assert auth.check_api_key("nope").status is auth.KeyStatus.MALFORMED
    key.revoke()  # post_save receiver (connected in ApiConfig.ready) drops the cached key
    assert key.prefix not in auth._known_keys
    assert auth.check_api_key(raw).status is auth.KeyStatus.REVOKED
    assert auth.store_for_raw_key(raw) is None
    # A wrong secret on a revoked key says "invalid", never reveals the key exists.
    assert auth.check_api_key(f"sr_{key.prefix}_wrong").status is auth.KeyStatus.INVALID


def test_deleted_key_is_refused_at_once(store):
    key, raw = ApiKey.generate(store, "to delete")
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=raw)
    assert client.get("/api/v1/products").status_code == 200
    key.delete()
    response = client.get("/api/v1/products")
    assert response.status_code == 401
    assert response.json()["error"] == {"code": "authentication_failed", "message": "Invalid API key.", "details": None}
