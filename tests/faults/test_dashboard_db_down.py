"""PostgreSQL stopped under a signed-in dashboard user: pages answer the styled 503 "database
unavailable" page with ``Retry-After`` (not Django's bare "Server Error (500)"), and work again once
the server is back.

A real outage: the test's own PostgreSQL (``private_postgres``, never the shared server), a real
gunicorn with DEBUG off (``server_env``), a real login (a database-backed session), then
``pg_ctl stop`` while the browser-like session keeps asking for pages. The unit tests in
``tests/dashboard/test_error_pages.py`` cover the page itself (texts, zh-Hans, no database access).
"""

from __future__ import annotations

import pytest
import requests

from tests.faults.conftest import Gunicorn, PrivatePostgres, manage, server_env

pytestmark = [pytest.mark.services]

DB_NAME = "shop_recs_dashboard_outage"
PASSWORD = "outage-pass-123!"
SEED = f"""
from django.contrib.auth import get_user_model
from shop_recs.stores.models import Membership, Role, Store

store = Store.objects.create(name="Outage Shop", slug="outage")
user = get_user_model().objects.create_user("owner", password={PASSWORD!r})
Membership.objects.create(user=user, store=store, role=Role.MERCHANT)
"""
PAGES = ("/s/outage/", "/s/outage/customers/", "/s/outage/catalog/")


@pytest.fixture
def dashboard_server(private_postgres: PrivatePostgres, tmp_path):
    """(base URL, the private server, gunicorn) for a dashboard with one merchant in one store."""
    with private_postgres.connect() as conn:
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    # Plain HTTP on 127.0.0.1: a Secure session or CSRF cookie would never be sent back.
    env = server_env(
        private_postgres,
        DB_NAME,
        SHOP_RECS_VAR_DIR=str(tmp_path / "var"),
        SESSION_COOKIE_SECURE="0",
        CSRF_COOKIE_SECURE="0",
    )
    manage(env, "migrate", "--no-input", "-v", "0")
    manage(env, "shell", "-c", SEED)
    server = Gunicorn(env, tmp_path / "gunicorn.log", "-w", "1", "-k", "gthread", "--threads", "2")
    try:
        server.start(ready_path="/healthz")
        yield server.base, private_postgres, server
    finally:
        server.stop()


def _signed_in(base: str) -> requests.Session:
    session = requests.Session()
    session.get(f"{base}/accounts/login/", timeout=10)
    r = session.post(
        f"{base}/accounts/login/",
        data={"username": "owner", "password": PASSWORD, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        headers={"Referer": f"{base}/accounts/login/"},
        allow_redirects=False,
        timeout=10,
    )
    assert r.status_code == 302, r.text[:500]
    return session


def test_dashboard_pages_answer_the_styled_503_while_postgres_is_down(dashboard_server):
    base, postgres, server = dashboard_server
    session = _signed_in(base)
    for page in PAGES:
        r = session.get(base + page, timeout=10, allow_redirects=False)
        assert r.status_code == 200, (page, r.status_code, r.text[:300])

    postgres.stop()
    try:
        for page in PAGES:
            r = session.get(base + page, timeout=30, allow_redirects=False)
            assert r.status_code == 503, (page, r.status_code, r.text[:500], server.output(3000))
            assert r.headers["Retry-After"].isdigit()
            assert r.headers["Content-Type"].startswith("text/html")
            assert "no-store" in r.headers["Cache-Control"]
            assert 'id="error-503"' in r.text and "The database is unavailable" in r.text
            assert "css/dashboard.css" in r.text and "Server Error (500)" not in r.text
        # The API next door keeps its JSON answer.
        api = requests.post(f"{base}/api/v1/events", json={}, headers={"Authorization": "Bearer x"}, timeout=30)
        assert api.headers["Content-Type"].startswith("application/json"), api.text[:300]
    finally:
        postgres.start()

    r = session.get(base + PAGES[0], timeout=30, allow_redirects=False)
    assert r.status_code == 200, (r.status_code, r.text[:500])  # the same session works again
