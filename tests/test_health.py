from __future__ import annotations

import pytest
from django.urls import reverse


def test_healthz_returns_fixed_json_without_auth_or_database(client):
    # No django_db mark: any database access in the view would raise here.
    assert reverse("healthz") == "/healthz"
    resp = client.get("/healthz")
    assert resp.status_code == 200
    assert resp["Content-Type"] == "application/json"
    assert resp.json() == {"status": "ok"}


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_healthz_is_get_only(client, method):
    assert getattr(client, method)("/healthz").status_code == 405
