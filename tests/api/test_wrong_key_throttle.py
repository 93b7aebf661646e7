"""Wrong API keys are throttled per address (issue 12 §8): 401 until the limit, then 429 with Retry-After."""

from __future__ import annotations

import pytest
from django.core.cache import cache


@pytest.fixture
def small_limit(settings):
    settings.API_KEY_FAILURE_LIMIT = 3
    settings.API_KEY_FAILURE_WINDOW_SECONDS = 600
    cache.clear()
    yield
    cache.clear()


def _get(client, key, ip):
    return client.get("/api/v1/popular", HTTP_AUTHORIZATION=f"Bearer {key}", REMOTE_ADDR=ip)


def test_wrong_keys_get_401_then_429(client, api_key, small_limit):
    for _ in range(3):
        response = _get(client, "sr_nope_wrongsecret", "10.1.1.1")
        assert response.status_code == 401 and response.json()["error"]["code"] == "authentication_failed"
    throttled = _get(client, "sr_nope_wrongsecret", "10.1.1.1")
    assert throttled.status_code == 429
    assert throttled.json()["error"]["code"] == "throttled"
    assert 0 < int(throttled["Retry-After"]) <= 600
    # Another address is not affected, and a valid key from the throttled address still works.
    assert _get(client, "sr_nope_wrongsecret", "10.2.2.2").status_code == 401
    assert _get(client, api_key, "10.1.1.1").status_code == 200
