"""A form posted without a valid CSRF token gets a styled 403 that says what to do (``CSRF_FAILURE_VIEW``).

Django's own answer is a bare "Forbidden (403) CSRF verification failed. Request aborted.": a merchant
who left a page open across a sign-out could not tell that nothing was saved or how to recover.
"""

from __future__ import annotations

import pytest
from django.test import Client, RequestFactory

from shop_recs.dashboard import errors
from shop_recs.stores.models import Membership, Role

pytestmark = pytest.mark.django_db

STYLESHEET = "css/dashboard.css"


def _csrf_client(user=None) -> Client:
    client = Client(enforce_csrf_checks=True)
    if user is not None:
        client.force_login(user)
    return client


def test_a_post_without_a_token_gets_the_styled_page_and_changes_nothing(merchant, analyst, store):
    client = _csrf_client(merchant)
    target = Membership.objects.get(store=store, user=analyst)
    response = client.post(
        f"/s/alpha/settings/members/{target.pk}/role/",
        {"role": "merchant"},
        HTTP_REFERER="http://testserver/s/alpha/settings/members/",
    )
    assert response.status_code == 403
    html = response.content.decode()
    assert STYLESHEET in html and 'id="error-csrf"' in html
    assert "CSRF verification failed" not in html and "Request aborted" not in html
    assert "The form has expired" in html
    assert "reload the page and try again" in html
    assert "allow cookies for this site" in html
    # Back to the page the form was on (the failed URL itself only takes POST).
    assert 'href="http://testserver/s/alpha/settings/members/" id="csrf-retry"' in html
    assert response["Cache-Control"].startswith("max-age=0")
    target.refresh_from_db()
    assert target.role == Role.ANALYST


def test_the_login_form_without_its_cookie_says_the_same_and_offers_no_foreign_link(merchant):
    client = _csrf_client()
    response = client.post(
        "/accounts/login/",
        {"username": "merchant", "password": "pw-123456!"},
        HTTP_REFERER="https://evil.example/phish",
    )
    assert response.status_code == 403
    html = response.content.decode()
    assert 'id="error-csrf"' in html and STYLESHEET in html
    assert "evil.example" not in html and 'id="csrf-retry"' not in html
    assert "_auth_user_id" not in client.session


def test_the_page_is_in_the_user_s_language_and_nothing_is_saved(merchant, store):
    client = _csrf_client(merchant)
    client.cookies["django_language"] = "zh-hans"
    response = client.post("/s/alpha/settings/store/", {"name": "Renamed"})
    assert response.status_code == 403
    html = response.content.decode()
    assert '<html lang="zh-hans">' in html and 'id="error-csrf"' in html
    assert "退出" in html  # the shell's own texts are translated ("Log out")
    store.refresh_from_db()
    assert store.name == "Alpha Shop"


def test_a_valid_token_still_passes(merchant, analyst, store):
    client = _csrf_client(merchant)
    page = client.get("/s/alpha/settings/members/")
    token = page.cookies["csrftoken"].value
    target = Membership.objects.get(store=store, user=analyst)
    response = client.post(
        f"/s/alpha/settings/members/{target.pk}/role/", {"role": "merchant", "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302
    target.refresh_from_db()
    assert target.role == Role.MERCHANT


def test_api_paths_keep_django_s_plain_answer(merchant):
    # The API authenticates with keys (no cookies, so no CSRF check); should an API path ever be
    # checked, it does not get the dashboard's HTML shell.
    request = RequestFactory().post("/api/v1/events")
    response = errors.csrf_failure(request, "CSRF cookie not set.")
    assert response.status_code == 403
    assert STYLESHEET not in response.content.decode()
