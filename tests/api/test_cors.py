"""Issue 16 §2: CORS for ``/api/v1/`` (django-cors-headers, origins from publishable keys).

Preflights need no key and are allowed for the origins some active publishable key lists; an answer
is readable by an origin only when the request's own key is publishable and lists it.
"""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from shop_recs.api import cors
from shop_recs.stores.models import ApiKey, KeyKind

pytestmark = pytest.mark.django_db

SHOP = "https://shop.example.com"
OTHER_SHOP = "https://beta.example.org"
EVIL = "https://evil.example.net"
ACAO = "Access-Control-Allow-Origin"


def preflight(origin: str, path: str = "/api/v1/recommendations/customer/c1", method: str = "GET"):
    return Client().options(
        path,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD=method,
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type",
    )


@pytest.fixture
def publishable(store):
    return ApiKey.generate(store, "storefront", kind=KeyKind.PUBLISHABLE, allowed_origins=[SHOP])


@pytest.fixture
def seeded(store, make_product, make_customer):
    make_product(store, "SKU-1")
    make_customer(store, "c1")
    return store


def test_preflight_from_a_listed_origin_needs_no_key(publishable):
    response = preflight(SHOP)
    assert response.status_code == 200  # before: 401, the preflight carried no key
    assert response[ACAO] == SHOP
    allowed = {h.strip() for h in response["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "x-api-key", "content-type", "idempotency-key", "x-request-id"} <= allowed
    methods = {m.strip() for m in response["Access-Control-Allow-Methods"].split(",")}
    assert {"GET", "POST"} <= methods and "DELETE" not in methods and "PUT" not in methods
    assert "Access-Control-Allow-Credentials" not in response
    assert int(response["Access-Control-Max-Age"]) > 0
    assert "origin" in response["Vary"].lower()


def test_preflight_for_a_post_event(publishable):
    response = preflight(SHOP, "/api/v1/events", "POST")
    assert response.status_code == 200 and response[ACAO] == SHOP


def test_preflight_from_an_unlisted_origin_gets_no_allow_headers(publishable):
    response = preflight(EVIL)
    assert ACAO not in response
    assert "Access-Control-Allow-Headers" not in response


def test_secret_keys_open_no_origin(store):
    ApiKey.generate(store, "server", allowed_origins=[SHOP])  # ignored for a secret key
    assert ACAO not in preflight(SHOP)


def test_no_cors_outside_the_api(publishable, store):
    for path in ("/api/schema/", f"/s/{store.slug}/", "/accounts/login/"):
        response = Client().get(path, HTTP_ORIGIN=SHOP)
        assert ACAO not in response, path
        assert ACAO not in preflight(SHOP, path)


def test_new_and_revoked_keys_change_the_preflight_at_once(store):
    assert ACAO not in preflight(OTHER_SHOP)
    key, _ = ApiKey.generate(store, "beta", kind=KeyKind.PUBLISHABLE, allowed_origins=[OTHER_SHOP])
    assert preflight(OTHER_SHOP)[ACAO] == OTHER_SHOP  # the save dropped this process's origin list
    key.revoke()
    assert ACAO not in preflight(OTHER_SHOP)


def test_the_origin_list_is_cached_briefly_per_process(store, settings):
    """A key written by another process (no signal here) counts once the list expires."""
    settings.API_KEY_CACHE_SECONDS = 3600
    assert ACAO not in preflight(OTHER_SHOP)  # reads (and caches) the empty list
    ApiKey.objects.bulk_create(
        [
            ApiKey(
                store=store,
                name="elsewhere",
                kind=KeyKind.PUBLISHABLE,
                allowed_origins=[OTHER_SHOP],
                prefix="e1e1e1e1",
                key_hash="0" * 64,
            )
        ]
    )  # bulk_create sends no post_save: as if another web process had created it
    assert ACAO not in preflight(OTHER_SHOP)
    settings.API_KEY_CACHE_SECONDS = 0
    assert preflight(OTHER_SHOP)[ACAO] == OTHER_SHOP
    cors.forget_publishable_origins()


def test_answers_are_readable_by_the_keys_own_origin(seeded, publishable):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {publishable[1]}")
    response = client.get("/api/v1/recommendations/customer/c1", HTTP_ORIGIN=SHOP)
    assert response.status_code == 200
    assert response[ACAO] == SHOP
    exposed = {h.strip().lower() for h in response["Access-Control-Expose-Headers"].split(",")}
    assert {"retry-after", "x-request-id"} <= exposed
    assert "origin" in response["Vary"].lower()
    # A refusal the page should be able to read (its own origin, a route it may not call) is readable too.
    refused = client.get("/api/v1/products", HTTP_ORIGIN=SHOP)
    assert refused.status_code == 403 and refused[ACAO] == SHOP


def test_another_stores_origin_cannot_read_this_stores_answers(seeded, publishable, other_store):
    """OTHER_SHOP passes the preflight (the other store's key lists it) but this store's key does not
    list it: 403, and no allow header, so the page cannot even read the refusal."""
    ApiKey.generate(other_store, "beta", kind=KeyKind.PUBLISHABLE, allowed_origins=[OTHER_SHOP])
    assert preflight(OTHER_SHOP)[ACAO] == OTHER_SHOP
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {publishable[1]}")
    response = client.get("/api/v1/recommendations/customer/c1", HTTP_ORIGIN=OTHER_SHOP)
    assert response.status_code == 403 and response.json()["error"]["code"] == "origin_not_allowed"
    assert ACAO not in response


def test_secret_key_answers_are_never_readable_by_a_page(seeded, publishable, api_client):
    response = api_client.get("/api/v1/recommendations/customer/c1", HTTP_ORIGIN=SHOP)
    assert response.status_code == 200
    assert ACAO not in response


def test_bad_key_answers_carry_no_allow_header(seeded, publishable):
    response = APIClient().get(
        "/api/v1/recommendations/customer/c1", HTTP_ORIGIN=SHOP, HTTP_AUTHORIZATION="Bearer pk_deadbeef_nope"
    )
    assert response.status_code == 401
    assert ACAO not in response


def test_an_early_refusal_is_readable_by_the_keys_origin(seeded, publishable, settings):
    """The rate limiter answers before the API's permission runs: its 429 still carries the allow header
    for the key's own origin, so the page can read ``Retry-After``; another origin's cannot."""
    settings.API_RATE_LIMIT_PER_KEY = 1  # read when the test client builds its middleware chain
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {publishable[1]}")
    assert client.get("/api/v1/popular", HTTP_ORIGIN=SHOP).status_code == 200
    limited = client.get("/api/v1/popular", HTTP_ORIGIN=SHOP)
    assert limited.status_code == 429
    assert limited[ACAO] == SHOP and "Retry-After" in limited
    assert "retry-after" in limited["Access-Control-Expose-Headers"].lower()
    other = client.get("/api/v1/popular", HTTP_ORIGIN=EVIL)
    assert other.status_code in (403, 429) and ACAO not in other
