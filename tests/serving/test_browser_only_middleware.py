"""The browser's middleware passes ``/api/v1/`` by (shop_recs.api.browser_only): the API keeps what
it needs (language, security headers, errors) and gets none of sessions, CSRF, users or nonces, and the
dashboard keeps all of them."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from shop_recs.api.browser_only import API_CONTENT_SECURITY_POLICY

pytestmark = pytest.mark.django_db
RECS = "/api/v1/recommendations/customer/C0?n=3"


def test_an_api_answer_sets_no_cookie_and_carries_the_api_policy(shop, api_key, merchant):
    client = Client()
    client.force_login(merchant)  # a browser with a dashboard session calls the API too
    session_before = client.cookies["sessionid"].value
    response = client.get(RECS, HTTP_AUTHORIZATION=f"Bearer {api_key}")
    assert response.status_code == 200, response.content
    assert response["Content-Security-Policy"] == API_CONTENT_SECURITY_POLICY
    assert "nonce" not in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"  # SecurityMiddleware still runs
    assert not response.cookies  # no session save, no CSRF cookie
    assert client.cookies["sessionid"].value == session_before
    assert not hasattr(response.wsgi_request, "session")
    assert "Cookie" not in response.get("Vary", "")


def test_a_dashboard_session_never_authenticates_the_api(shop, merchant):
    client = Client()
    client.force_login(merchant)
    response = client.get(RECS)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_the_api_still_follows_accept_language(shop, api_key):
    client = Client()
    english = client.get(RECS, HTTP_AUTHORIZATION=f"Bearer {api_key}")
    chinese = client.get(RECS, HTTP_AUTHORIZATION=f"Bearer {api_key}", HTTP_ACCEPT_LANGUAGE="zh-Hans")
    assert english["Content-Language"] == "en" and chinese["Content-Language"] == "zh-hans"
    assert "Accept-Language" in chinese["Vary"]
    text_en = english.json()["items"][0]["reason"]["text"]
    text_zh = chinese.json()["items"][0]["reason"]["text"]
    assert "Because you" in text_en and text_zh != text_en and re.search(r"[\u4e00-\u9fff]", text_zh)


def test_an_api_error_outside_drf_still_gets_the_json_shape(api_key, store):
    response = Client().get("/api/v1/no-such-endpoint", HTTP_AUTHORIZATION=f"Bearer {api_key}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_the_dashboard_keeps_sessions_csrf_and_the_nonce_policy(store, merchant):
    client = Client(enforce_csrf_checks=True)
    client.force_login(merchant)
    page = client.get(f"/s/{store.slug}/jobs/")
    assert page.status_code == 200
    policy = page["Content-Security-Policy"]
    assert "'nonce-" in policy and policy != API_CONTENT_SECURITY_POLICY
    assert page.wsgi_request.user == merchant
    assert "no-store" in page["Cache-Control"]  # PrivatePagesMiddleware still marks signed-in pages
    # A dashboard POST without its CSRF token is refused: CsrfViewMiddleware still checks the browser.
    refused = client.post(f"/s/{store.slug}/jobs/", {})
    assert refused.status_code == 403
