"""Wrong API keys are throttled per address (issue 12 §8): 401 until the limit, then 429 with Retry-After."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def small_limit(settings):
    settings.API_KEY_FAILURE_LIMIT = 3
    settings.API_KEY_FAILURE_WINDOW_SECONDS = 600


def _address() -> str:
    """A fresh client address per run: counts live in the shared cache (Redis on CI), which the tests
    never flush (it is the broker's database too)."""
    return f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"


def _get(client, key, ip):
    return client.get("/api/v1/popular", HTTP_AUTHORIZATION=f"Bearer {key}", REMOTE_ADDR=ip)


def test_wrong_keys_get_401_then_429(client, api_key, small_limit):
    mine, other = _address(), _address()
    for _ in range(3):
        response = _get(client, "sr_nope_wrongsecret", mine)
        assert response.status_code == 401 and response.json()["error"]["code"] == "authentication_failed"
    throttled = _get(client, "sr_nope_wrongsecret", mine)
    assert throttled.status_code == 429
    assert throttled.json()["error"]["code"] == "throttled"
    assert 0 < int(throttled["Retry-After"]) <= 600
    # Another address is not affected, and a valid key from the throttled address still works.
    assert _get(client, "sr_nope_wrongsecret", other).status_code == 401
    assert _get(client, api_key, mine).status_code == 200
