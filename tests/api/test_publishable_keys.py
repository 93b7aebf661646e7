"""Issue 16 §1: publishable keys (``pk_…``) may call only the storefront routes, and from a browser only
on their allowed origins; secret keys (``sr_…``, every existing key) are unchanged."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import ValidationError
from django.test import RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from rest_framework.test import APIClient

from shop_recs.activity.models import Event
from shop_recs.api import auth, fastpath
from shop_recs.api.auth import PUBLISHABLE_ROUTES
from shop_recs.stores.models import ApiKey, KeyKind, normalize_origin
from tests.api.helpers import count, event

pytestmark = pytest.mark.django_db

SHOP = "https://shop.example.com"
EVIL = "https://evil.example.net"


@pytest.fixture
def publishable(store) -> tuple[ApiKey, str]:
    return ApiKey.generate(store, "storefront", kind=KeyKind.PUBLISHABLE, allowed_origins=[SHOP])


@pytest.fixture
def pk_client(publishable) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {publishable[1]}")
    return client


@pytest.fixture
def catalog(store, make_product, make_customer):
    make_product(store, "SKU-1")
    make_product(store, "SKU-2")
    make_customer(store, "c1")
    return store


# --- the key itself --------------------------------------------------------------------------------


def test_raw_keys_say_their_kind_and_prefix_of_reads_both(store, publishable):
    key, raw = publishable
    secret, secret_raw = ApiKey.generate(store, "server")
    assert raw.startswith("pk_") and secret_raw.startswith("sr_")
    assert ApiKey.prefix_of(raw) == key.prefix and ApiKey.prefix_of(secret_raw) == secret.prefix
    assert key.kind == KeyKind.PUBLISHABLE and secret.kind == KeyKind.SECRET
    assert key.display_prefix == f"pk_{key.prefix}_…" and secret.display_prefix == f"sr_{secret.prefix}_…"
    assert key.allowed_origins == [SHOP] and secret.allowed_origins == []


def test_swapping_the_kind_letters_does_not_make_a_secret_key(store, publishable):
    """The whole raw key is hashed: ``sr_`` in front of a publishable key's secret matches nothing."""
    _, raw = publishable
    forged = "sr_" + raw[len("pk_") :]
    assert auth.check_api_key(forged).status is auth.KeyStatus.INVALID
    response = APIClient().get("/api/v1/products", HTTP_AUTHORIZATION=f"Bearer {forged}")
    assert response.status_code == 401


def test_existing_keys_default_to_secret(store):
    key = ApiKey.objects.create(store=store, name="old", prefix="0ld0ld00", key_hash="x" * 64)
    key.refresh_from_db()
    assert key.kind == KeyKind.SECRET and key.allowed_origins == []


@pytest.mark.parametrize(
    ("origin", "reason"),
    [
        ("*", "wildcards are not allowed"),
        ("https://*.example.com", "wildcards are not allowed"),
        ("ftp://shop.example.com", "scheme must be http or https"),
        ("shop.example.com", "scheme must be http or https"),
        ("https://shop.example.com/", "no path"),
        ("https://shop.example.com/widgets", "no path"),
        ("https://shop.example.com?x=1", "no path"),
        ("https://user:pw@shop.example.com", "no user name or password"),
        ("https://", "host is missing"),
        ("https://shop.example.com:99999", "not a valid origin"),
    ],
)
def test_bad_origins_are_refused_with_the_reason(store, origin, reason):
    with pytest.raises(ValidationError) as exc:
        ApiKey.generate(store, "bad", kind=KeyKind.PUBLISHABLE, allowed_origins=[origin])
    assert reason in exc.value.messages[0] and origin in exc.value.messages[0]
    assert not ApiKey.objects.filter(name="bad").exists()


def test_origins_are_normalised_like_browsers_send_them():
    assert normalize_origin(" HTTPS://Shop.Example.com ") == "https://shop.example.com"
    assert normalize_origin("https://shop.example.com:443") == "https://shop.example.com"
    assert normalize_origin("http://localhost:8000") == "http://localhost:8000"
    assert normalize_origin("http://[::1]:3000") == "http://[::1]:3000"


def test_a_secret_key_keeps_no_origins(store):
    key, _ = ApiKey.generate(store, "server", allowed_origins=[SHOP])
    assert key.allowed_origins == []


# --- what a publishable key may call ----------------------------------------------------------------


def test_publishable_key_calls_the_storefront_endpoints(catalog, pk_client):
    for url in (
        "/api/v1/recommendations/customer/c1",
        "/api/v1/products/SKU-1/similar",
        "/api/v1/products/SKU-1/frequently-bought-together",
        "/api/v1/popular",
        "/api/v1/trending",
        "/api/v1/search?q=product",
        "/api/v1/ads",
    ):
        response = pk_client.get(url, HTTP_ORIGIN=SHOP)
        assert response.status_code == 200, (url, response.content)
    response = pk_client.post("/api/v1/recommendations/session", {"viewed": ["SKU-1"]}, format="json")
    assert response.status_code == 200
    response = pk_client.post("/api/v1/events", event(type="click", context={"list_id": "x"}), format="json")
    assert response.status_code == 201
    assert count(Event, event_type="click") == 1


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("get", "/api/v1/products", None),
        ("get", "/api/v1/products/SKU-1", None),
        ("put", "/api/v1/products/SKU-9", {"title": "Injected"}),
        ("post", "/api/v1/products/bulk", [{"sku": "SKU-9", "title": "Injected"}]),
        ("post", "/api/v1/products/SKU-1/deactivate", None),
        ("post", "/api/v1/events/batch", [event()]),
        ("get", "/api/v1/customers/c1", None),
        ("delete", "/api/v1/customers/c1", None),
        ("get", "/api/v1/customers/c1/events", None),
        ("post", "/api/v1/customers/c1/merge", {"from": "s-1"}),
    ],
)
def test_publishable_key_is_refused_everything_else(catalog, pk_client, method, url, body):
    response = (
        getattr(pk_client, method)(url, body, format="json") if body is not None else getattr(pk_client, method)(url)
    )
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "key_not_allowed"
    assert url in error["message"] and "secret key" in error["message"]
    assert count(Event) == 0


def _api_routes() -> list[tuple[str, str, type]]:
    """Every ``/api/v1/`` route: (URL name, a concrete path, the view class)."""
    out = []
    api = next(p for p in get_resolver().url_patterns if isinstance(p, URLResolver) and str(p.pattern) == "api/v1/")

    def walk(patterns, prefix):
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                route = re.sub(r"<(?:\w+:)?\w+>", "00000000-0000-0000-0000-000000000000", prefix + str(p.pattern))
                out.append((p.name, "/" + route, p.callback.view_class))

    walk(api.url_patterns, "api/v1/")
    return out


def test_every_route_outside_the_allow_list_refuses_a_publishable_key(catalog, pk_client):
    """The allow-list is an allow-list: walking the URL conf, every (route, method) a publishable key
    is not granted answers 403 ``key_not_allowed``, so a new endpoint is closed to it by default."""
    routes = _api_routes()
    assert {name for name, _, _ in routes} >= set(PUBLISHABLE_ROUTES)  # no stale names in the allow-list
    checked = 0
    for name, path, view in routes:
        assert resolve(path).url_name == name
        for method in ("get", "post", "put", "patch", "delete"):
            if not hasattr(view, method) or method.upper() in PUBLISHABLE_ROUTES.get(name, ()):
                continue
            response = getattr(pk_client, method)(path, {}, format="json", HTTP_ORIGIN=SHOP)
            assert response.status_code == 403, (method, path, response.content)
            assert response.json()["error"]["code"] == "key_not_allowed"
            checked += 1
    assert checked >= 12
    assert count(Event) == 0


# --- the origin check --------------------------------------------------------------------------------


def test_a_browser_on_another_origin_is_refused(catalog, pk_client):
    for url in ("/api/v1/recommendations/customer/c1", "/api/v1/search?q=product", "/api/v1/popular"):
        response = pk_client.get(url, HTTP_ORIGIN=EVIL)
        assert response.status_code == 403
        error = response.json()["error"]
        assert error["code"] == "origin_not_allowed" and EVIL in error["message"]
    response = pk_client.post("/api/v1/events", event(), format="json", HTTP_ORIGIN=EVIL)
    assert response.status_code == 403 and response.json()["error"]["code"] == "origin_not_allowed"
    assert count(Event) == 0


def test_origin_null_is_refused(catalog, pk_client):
    """Sandboxed frames and file:// pages send ``Origin: null``: never an allowed origin."""
    response = pk_client.get("/api/v1/popular", HTTP_ORIGIN="null")
    assert response.status_code == 403 and response.json()["error"]["code"] == "origin_not_allowed"


def test_without_an_origin_a_publishable_key_is_served(catalog, pk_client):
    """Server-to-server (no Origin): allowed; the route allow-list still holds."""
    assert pk_client.get("/api/v1/recommendations/customer/c1").status_code == 200
    assert pk_client.get("/api/v1/products").status_code == 403


def test_secret_keys_ignore_origin_and_the_allow_list(catalog, api_client):
    assert api_client.get("/api/v1/products", HTTP_ORIGIN=EVIL).status_code == 200
    assert api_client.get("/api/v1/recommendations/customer/c1", HTTP_ORIGIN=EVIL).status_code == 200


def test_x_api_key_header_is_checked_the_same_way(catalog, publishable):
    client = APIClient()
    ok = client.get("/api/v1/popular", HTTP_X_API_KEY=publishable[1], HTTP_ORIGIN=SHOP)
    assert ok.status_code == 200
    refused = client.get("/api/v1/products", HTTP_X_API_KEY=publishable[1], HTTP_ORIGIN=SHOP)
    assert refused.json()["error"]["code"] == "key_not_allowed"


def test_revoked_publishable_key_is_refused_at_once(catalog, publishable, pk_client):
    assert pk_client.get("/api/v1/popular", HTTP_ORIGIN=SHOP).status_code == 200
    publishable[0].revoke()
    response = pk_client.get("/api/v1/popular", HTTP_ORIGIN=SHOP)
    assert response.status_code == 401 and response.json()["error"]["code"] == "authentication_failed"


# --- the fast path runs the same check ------------------------------------------------------------------


def _fast_request(path: str, raw: str, origin: str | None = None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    if origin:
        headers["HTTP_ORIGIN"] = origin
    request = RequestFactory().get(path, **headers)
    request.resolver_match = resolve(path)
    return request


def test_the_fast_path_refuses_what_the_permission_refuses(catalog, publishable, api_key):
    """``fastpath.store_of_key`` (the plain-Django GET path) answers only for requests the DRF permission
    would let through; anything else falls through to DRF, which answers the 403."""
    _, raw = publishable
    recs = "/api/v1/recommendations/customer/c1"
    assert fastpath.store_of_key(_fast_request(recs, raw, SHOP)).pk == catalog.pk
    assert fastpath.store_of_key(_fast_request(recs, raw)).pk == catalog.pk
    assert fastpath.store_of_key(_fast_request(recs, raw, EVIL)) is None
    assert fastpath.store_of_key(_fast_request(recs, api_key, EVIL)).pk == catalog.pk
    # A route outside the allow-list (were it ever given a fast path) is refused there too.
    assert fastpath.store_of_key(_fast_request("/api/v1/products", raw, SHOP)) is None


# --- the dashboard's API keys page -------------------------------------------------------------------


def _keys_url(store) -> str:
    from django.urls import reverse

    return reverse("dashboard:api_keys", kwargs={"store_slug": store.slug})


def test_merchant_creates_a_publishable_key_with_origins(client, store, merchant):
    client.force_login(merchant)
    response = client.post(
        _keys_url(store),
        {
            "name": "storefront",
            "kind": "publishable",
            "allowed_origins": "https://Shop.example.com\n\nhttp://localhost:3000\n",
        },
    )
    assert response.status_code == 200
    key = ApiKey.objects.get(name="storefront")
    assert key.kind == KeyKind.PUBLISHABLE and key.created_by == merchant
    assert key.allowed_origins == ["https://shop.example.com", "http://localhost:3000"]
    page = response.content.decode()
    raw = re.search(r'id="raw-key">(pk_[^<]+)<', page).group(1)
    assert ApiKey.prefix_of(raw) == key.prefix
    assert 'id="embed-snippet"' in page and "shop_recs/widget.js" in page and raw in page
    listing = client.get(_keys_url(store)).content.decode()
    assert (
        f"pk_{key.prefix}_…" in listing
        and "https://shop.example.com" in listing
        and 'data-kind="publishable"' in listing
    )


def test_merchant_creates_a_secret_key_by_default(client, store, merchant):
    client.force_login(merchant)
    response = client.post(_keys_url(store), {"name": "server", "kind": "secret", "allowed_origins": ""})
    assert response.status_code == 200
    key = ApiKey.objects.get(name="server")
    assert key.kind == KeyKind.SECRET and key.allowed_origins == []
    assert 'id="embed-snippet"' not in response.content.decode()


@pytest.mark.parametrize(
    ("kind", "origins", "message"),
    [
        ("publishable", "https://shop.example.com\n*", "Line 2: *: wildcards are not allowed"),
        (
            "publishable",
            "https://shop.example.com/path",
            "Line 1: https://shop.example.com/path: an origin has no path",
        ),
        ("publishable", "ftp://x.example.com", "Line 1: ftp://x.example.com: the scheme must be http or https"),
        ("publishable", "", "A publishable key needs at least one allowed origin"),
        ("secret", "https://shop.example.com", "Only publishable keys have allowed origins"),
        ("root", "", "Select a valid choice"),
    ],
)
def test_bad_origins_are_named_on_the_form(client, store, merchant, kind, origins, message):
    from html import unescape

    client.force_login(merchant)
    response = client.post(_keys_url(store), {"name": "bad", "kind": kind, "allowed_origins": origins})
    assert response.status_code == 200
    assert message in unescape(response.content.decode())
    assert not ApiKey.objects.filter(name="bad").exists()


def test_analysts_cannot_create_or_revoke_keys(client, store, analyst, publishable):
    client.force_login(analyst)
    page = client.get(_keys_url(store))
    assert page.status_code == 200 and f"pk_{publishable[0].prefix}_…" in page.content.decode()
    response = client.post(_keys_url(store), {"name": "sneaky", "kind": "publishable", "allowed_origins": SHOP})
    assert response.status_code == 403
    assert not ApiKey.objects.filter(name="sneaky").exists()
    from django.urls import reverse

    revoke = reverse("dashboard:revoke_api_key", kwargs={"store_slug": store.slug, "key_id": publishable[0].pk})
    assert client.post(revoke).status_code == 403
    publishable[0].refresh_from_db()
    assert publishable[0].is_active


def test_revoking_records_who_did_it(client, store, merchant, publishable):
    from django.urls import reverse

    client.force_login(merchant)
    revoke = reverse("dashboard:revoke_api_key", kwargs={"store_slug": store.slug, "key_id": publishable[0].pk})
    client.post(revoke)
    key = ApiKey.objects.get(pk=publishable[0].pk)
    assert key.revoked_at is not None and key.revoked_by == merchant
    assert "· merchant" in client.get(_keys_url(store)).content.decode()
