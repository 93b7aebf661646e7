"""The dashboard's styled error pages: 403, 404, 500 and 503 "database unavailable".

Styled means the dashboard's stylesheet and texts (translated), not Django's bare "403 Forbidden" or
its debug 404 page. The 500 and 503 pages are checked to render while every database access fails.
API URLs keep their JSON errors.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from django.conf import settings as django_settings
from django.db import OperationalError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.test import Client, RequestFactory

from shop_recs.api.errors import DB_RETRY_AFTER_SECONDS
from shop_recs.dashboard import errors
from shop_recs.dashboard import views as dashboard_views

pytestmark = pytest.mark.django_db

STYLESHEET = "css/dashboard.css"
#: What Django's own pages say, which a styled page must not.
DJANGO_PAGES = ("403 Forbidden", "Using the URLconf", "Django tried these URL patterns", "Raised by:", "Traceback")


def _html(response) -> str:
    assert response["Content-Type"].startswith("text/html"), response["Content-Type"]
    html = response.content.decode()
    assert STYLESHEET in html, "not the dashboard's styled page"
    for marker in DJANGO_PAGES:
        assert marker not in html, marker
    return html


def _chinese(client: Client) -> Client:
    client.cookies[django_settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    return client


class DatabaseDown:
    """Every database access fails like a stopped server; ``calls`` counts the attempts."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, *args: object) -> None:  # set on the class: not bound, so no ``self`` of the wrapper
        self.calls += 1
        raise OperationalError('connection to server at "127.0.0.1", port 5432 failed: Connection refused')


@contextmanager
def database_down():
    """The database is unreachable inside the block only (the test's own setup and teardown need it)."""
    down = DatabaseDown()
    with pytest.MonkeyPatch.context() as m:
        m.setattr(BaseDatabaseWrapper, "ensure_connection", down)
        yield down


# --- 403 --------------------------------------------------------------------------------------


def test_analyst_refused_a_merchant_action_gets_the_styled_403(client, analyst, store):
    client.force_login(analyst)
    response = client.post("/s/alpha/settings/keys/1/revoke/")
    assert response.status_code == 403
    html = _html(response)
    assert 'id="error-403"' in html and "You are not allowed to do this" in html
    assert "changing the catalog, rules, campaigns, imports, members or API keys is for merchants" in html
    # Inside the dashboard shell: the store's navigation and the way back.
    assert "Alpha Shop" in html and 'aria-label="Main navigation"' in html
    assert 'href="/s/alpha/"' in html


def test_the_403_in_simplified_chinese(client, analyst, store):
    client.force_login(analyst)
    html = _html(_chinese(client).post("/s/alpha/settings/keys/1/revoke/"))
    assert "您无权执行此操作" in html and "返回控制台" in html
    assert "You are not allowed to do this" not in html


# --- 404 --------------------------------------------------------------------------------------


@pytest.mark.parametrize("debug", [True, False])
def test_unknown_sku_gets_the_styled_404_also_in_debug(client, merchant, store, settings, debug):
    settings.DEBUG = debug
    client.force_login(merchant)
    response = client.get("/s/alpha/catalog/NO-SUCH-SKU/")
    assert response.status_code == 404
    html = _html(response)
    assert 'id="error-404"' in html and "Page not found" in html
    assert "Alpha Shop" in html  # the store was resolved: its sidebar is there


def test_a_store_you_do_not_belong_to_is_a_styled_404(client, merchant, store, other_store):
    client.force_login(merchant)
    html = _html(client.get("/s/beta/"))
    assert 'id="error-404"' in html and "Beta Shop" not in html


def test_an_unknown_url_is_a_styled_404_when_debug_is_off(client, merchant, store):
    client.force_login(merchant)
    response = client.get("/s/alpha/no/such/page/")
    assert response.status_code == 404
    assert 'id="error-404"' in _html(response)


def test_the_404_in_simplified_chinese(client, merchant, store):
    client.force_login(merchant)
    html = _html(_chinese(client).get("/s/alpha/catalog/NO-SUCH-SKU/"))
    assert "页面不存在" in html and "Page not found" not in html


def test_api_urls_keep_their_json_errors(client, api_client):
    assert client.get("/api/v1/no/such/endpoint").json()["error"]["code"] == "not_found"
    r = api_client.get("/api/v1/products/NO-SUCH-SKU")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


# --- 500 --------------------------------------------------------------------------------------


def _crash(*args, **kwargs):
    raise RuntimeError("a bug")


def test_an_unexpected_error_gets_the_styled_500(merchant, store, monkeypatch):
    client = Client(raise_request_exception=False)
    client.force_login(merchant)
    monkeypatch.setattr(dashboard_views.selectors, "overview", _crash)
    response = client.get("/s/alpha/")
    assert response.status_code == 500
    html = _html(response)
    assert 'id="error-500"' in html and "Something went wrong" in html and "a bug" not in html
    assert "no-store" in response["Cache-Control"]
    # The page itself needs no database.
    with database_down() as down:
        page = errors.server_error_page(RequestFactory().get("/s/alpha/"))
    assert down.calls == 0 and 'id="error-500"' in page.content.decode()


def test_the_500_in_simplified_chinese(merchant, store, monkeypatch):
    client = _chinese(Client(raise_request_exception=False))
    client.force_login(merchant)
    monkeypatch.setattr(dashboard_views.selectors, "overview", _crash)
    html = _html(client.get("/s/alpha/"))
    assert "出错了" in html and "Something went wrong" not in html


# --- 503: the database is unreachable -----------------------------------------------------------


@pytest.mark.parametrize("debug", [True, False])
@pytest.mark.parametrize("method", ["get", "post"])
def test_database_down_gets_the_styled_503(client, merchant, store, settings, debug, method):
    settings.DEBUG = debug
    client.force_login(merchant)
    with database_down() as down:
        response = getattr(client, method)("/s/alpha/customers/?q=x")
    assert response.status_code == 503
    assert response["Retry-After"] == str(DB_RETRY_AFTER_SECONDS)
    assert "no-store" in response["Cache-Control"]
    html = _html(response)
    assert 'id="error-503"' in html and "The database is unavailable" in html
    assert f"Wait {DB_RETRY_AFTER_SECONDS} seconds, then reload the page" in html
    assert 'href="/s/alpha/customers/?q=x"' in html  # "Reload the page"
    # One attempt: the view's first query (loading the session). The page and every middleware on the
    # way out added none (a second attempt would have raised again and ended in a 500).
    assert down.calls == 1


def test_the_503_in_simplified_chinese(client, merchant, store):
    client.force_login(merchant)
    _chinese(client)
    with database_down():
        response = client.get("/s/alpha/")
    html = _html(response)
    assert response.status_code == 503
    assert "数据库暂时不可用" in html and f"请等待 {DB_RETRY_AFTER_SECONDS} 秒后重新加载页面" in html
    assert "The database is unavailable" not in html


def test_a_connection_lost_inside_a_view_is_a_503_too(client, merchant, store, monkeypatch, settings):
    settings.DEBUG = True

    def lost(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    client.force_login(merchant)
    monkeypatch.setattr(dashboard_views.selectors, "overview", lost)
    response = client.get("/s/alpha/")
    assert response.status_code == 503 and 'id="error-503"' in _html(response)


def test_a_database_error_outside_a_view_is_a_503_when_debug_is_off():
    """Django calls handler500 for an error raised in a middleware; a database error there is a 503."""
    request = RequestFactory().get("/s/alpha/")
    with database_down() as down:
        try:
            raise OperationalError("the server is restarting")
        except OperationalError:
            response = errors.handler500(request)
    assert response.status_code == 503 and response["Retry-After"] == str(DB_RETRY_AFTER_SECONDS)
    assert 'id="error-503"' in response.content.decode() and down.calls == 0


def test_the_api_keeps_its_json_503(api_client):
    with database_down():
        r = api_client.get("/api/v1/popular?n=3")
    assert r.status_code == 503, r.content
    assert r.json()["error"]["code"] == "database_unavailable"
    assert r["Retry-After"] == str(DB_RETRY_AFTER_SECONDS)
