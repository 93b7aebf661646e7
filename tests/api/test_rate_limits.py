"""Rate limits per API key and per address (issue #16): every /api/v1/ route, the fast path included,
counted in the shared cache (local memory on SQLite, Redis with ``require_redis``), JSON 429
``rate_limited`` with Retry-After, and fail-open when the cache is down."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid

import pytest
from django.test import override_settings

from shop_recs.api import auth, ratelimit
from shop_recs.stores.models import ApiKey
from tests.conftest import ROOT, require_redis

API = "/api/v1"
#: ``/search`` is served by the plain-Django fast path (shop_recs.api.fastpath), ``/popular`` by DRF.
FAST = f"{API}/search?q=shirt"
DRF = f"{API}/popular"


class FakeTime:
    """``ratelimit.time`` with a settable wall clock (monotonic stays real)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        import time

        return time.monotonic()


@pytest.fixture
def clock(monkeypatch) -> FakeTime:
    # A window start far from any other test's (the Redis counters are shared and never flushed),
    # plus 15 s into it.
    fake = FakeTime(60.0 * (10_000_000 + uuid.uuid4().int % 1_000_000) + 15)
    monkeypatch.setattr(ratelimit, "time", fake)
    return fake


def _address() -> str:
    return f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"


def _get(client, path: str, key: str | None, ip: str):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
    return client.get(path, REMOTE_ADDR=ip, **headers)


def _assert_limited(response, limit_kind: str, per_minute: int, retry_after: int) -> None:
    assert response.status_code == 429, response.content
    assert response["Content-Type"] == "application/json"
    assert response["Retry-After"] == str(retry_after)
    error = response.json()["error"]
    assert error["code"] == "rate_limited"
    assert error["details"] == {"limit": limit_kind, "requests_per_minute": per_minute, "retry_after": retry_after}
    assert str(per_minute) in error["message"]


# --- local memory cache (the SQLite runs) -----------------------------------------------------------


@pytest.mark.django_db
def test_per_key_limit_covers_the_fast_path_and_drf_alike(client, api_key, settings, clock):
    settings.API_RATE_LIMIT_PER_KEY = 4
    ip = _address()
    # Two fast-path and two DRF requests spend the key's four; one of each is refused.
    for path in (FAST, DRF, FAST, DRF):
        assert _get(client, path, api_key, ip).status_code == 200
    _assert_limited(_get(client, FAST, api_key, ip), "api_key", 4, retry_after=45)
    _assert_limited(_get(client, DRF, api_key, _address()), "api_key", 4, retry_after=45)


@pytest.mark.django_db
def test_the_next_window_starts_afresh(client, api_key, settings, clock):
    settings.API_RATE_LIMIT_PER_KEY = 1
    ip = _address()
    assert _get(client, DRF, api_key, ip).status_code == 200
    clock.now += 40  # 55 s into the window
    _assert_limited(_get(client, DRF, api_key, ip), "api_key", 1, retry_after=5)
    clock.now += 5  # the next window
    assert _get(client, DRF, api_key, ip).status_code == 200


@pytest.mark.django_db
def test_keys_are_counted_separately_and_only_once_verified(client, api_key, store, settings, clock):
    settings.API_RATE_LIMIT_PER_KEY = 2
    _, second = ApiKey.generate(store, "second key")
    ip = _address()
    prefix = ApiKey.prefix_of(api_key)
    forged = f"{api_key[: api_key.index(prefix) + len(prefix)]}_{'x' * 30}"
    # Wrong secrets with the key's prefix get 401 and do not spend the key's quota.
    for _ in range(5):
        assert _get(client, DRF, forged, ip).status_code == 401
    assert _get(client, DRF, api_key, ip).status_code == 200
    assert _get(client, DRF, api_key, ip).status_code == 200
    _assert_limited(_get(client, DRF, api_key, ip), "api_key", 2, retry_after=45)
    assert _get(client, DRF, second, ip).status_code == 200


@pytest.mark.django_db
def test_the_key_is_checked_once_per_request(client, api_key, settings, clock, monkeypatch):
    settings.API_RATE_LIMIT_PER_KEY = 100
    calls = []
    real = auth.check_api_key
    monkeypatch.setattr(auth, "check_api_key", lambda raw: calls.append(raw) or real(raw))
    assert _get(client, FAST, api_key, _address()).status_code == 200
    assert _get(client, DRF, api_key, _address()).status_code == 200
    # Limiter, fast path and DRF share the request's one check.
    assert calls == [api_key, api_key]


@pytest.mark.django_db
def test_per_address_limit_counts_every_api_request(client, api_key, settings, clock):
    settings.API_RATE_LIMIT_PER_IP = 3
    ip, other = _address(), _address()
    assert _get(client, FAST, api_key, ip).status_code == 200
    assert _get(client, DRF, None, ip).status_code == 401  # no key: counted all the same
    assert _get(client, f"{API}/no-such-endpoint", api_key, ip).status_code == 404
    _assert_limited(_get(client, DRF, api_key, ip), "ip", 3, retry_after=45)
    assert _get(client, DRF, api_key, other).status_code == 200
    # Outside the API nothing is limited.
    assert client.get("/healthz", REMOTE_ADDR=ip).status_code == 200


@pytest.mark.django_db
def test_the_429_keeps_the_request_id(client, api_key, settings, clock):
    settings.API_RATE_LIMIT_PER_IP = 1
    ip = _address()
    _get(client, DRF, api_key, ip)
    response = client.get(DRF, REMOTE_ADDR=ip, HTTP_AUTHORIZATION=f"Bearer {api_key}", HTTP_X_REQUEST_ID="req-7")
    assert response.status_code == 429
    assert response.json()["error"]["request_id"] == "req-7"


def test_lease_sizes():
    assert [ratelimit.lease_size(n) for n in (1, 99, 100, 1000, 10_000, 10**7)] == [1, 1, 1, 10, 100, 100]


@pytest.mark.django_db
def test_off_means_no_middleware(client, api_key, settings, clock, monkeypatch):
    settings.API_RATE_LIMIT_PER_KEY = 0
    settings.API_RATE_LIMIT_PER_IP = 0
    monkeypatch.setattr(ratelimit, "_claim", lambda *a: pytest.fail("the limiter ran with both limits 0"))
    for _ in range(3):
        assert _get(client, DRF, api_key, _address()).status_code == 200


def test_bad_settings_are_refused():
    code = "import django; django.setup()"
    env = {"API_RATE_LIMIT_PER_KEY": "-1", "DJANGO_SETTINGS_MODULE": "shop_recs.settings", "DEBUG": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True
    )
    assert out.returncode != 0
    assert "API_RATE_LIMIT_PER_KEY=-1 must be 0 (off)" in out.stderr


# --- Redis ----------------------------------------------------------------------------------------


def _redis_caches(url: str) -> dict:
    return {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "OPTIONS": {"socket_connect_timeout": 0.25, "socket_timeout": 0.5, "retry_on_timeout": False},
        }
    }


@pytest.fixture
def redis_cache():
    url = require_redis()
    with override_settings(CACHES=_redis_caches(url)):
        yield url


@pytest.mark.django_db
def test_on_redis_the_count_is_shared_between_processes(client, api_key, settings, clock, redis_cache):
    from django.core.cache import cache

    settings.API_RATE_LIMIT_PER_KEY = 3
    ip = _address()
    assert _get(client, DRF, api_key, ip).status_code == 200
    assert _get(client, FAST, api_key, ip).status_code == 200
    window = int(clock.now) - int(clock.now) % 60
    counter = cache.make_and_validate_key(f"ratelimit:api_key:{ApiKey.prefix_of(api_key)}:{window}")
    client_redis = cache._cache.get_client(counter)
    assert int(client_redis.get(counter)) == 2
    assert 0 < client_redis.ttl(counter) <= 65
    # Another process: no local lease, the same shared counter.
    ratelimit.reset()
    assert _get(client, DRF, api_key, ip).status_code == 200
    _assert_limited(_get(client, DRF, api_key, ip), "api_key", 3, retry_after=45)
    assert int(client_redis.get(counter)) == 4  # the refused claim is counted too, and nothing more


@pytest.mark.django_db
def test_on_redis_a_process_claims_leases_of_one_percent(client, api_key, settings, clock, redis_cache):
    from django.core.cache import cache

    settings.API_RATE_LIMIT_PER_IP = 1000  # leases of 10
    ip = _address()
    counter = cache.make_and_validate_key(f"ratelimit:ip:{ip}:{int(clock.now) - int(clock.now) % 60}")
    client_redis = cache._cache.get_client(counter)
    assert _get(client, DRF, api_key, ip).status_code == 200
    assert int(client_redis.get(counter)) == 10
    for _ in range(9):
        assert _get(client, DRF, api_key, ip).status_code == 200
    assert int(client_redis.get(counter)) == 10  # nine more from the local lease: no round trip
    assert _get(client, DRF, api_key, ip).status_code == 200
    assert int(client_redis.get(counter)) == 20


@pytest.mark.django_db
def test_on_redis_a_partial_last_lease_is_exact(client, api_key, settings, clock, redis_cache):
    """Limit 250, so leases of 2; other processes have taken 247: this one gets exactly the last 3
    (a full lease, then a partial one of 1), then 429."""
    from django.core.cache import cache

    settings.API_RATE_LIMIT_PER_IP = 250
    ip = _address()
    counter = cache.make_and_validate_key(f"ratelimit:ip:{ip}:{int(clock.now) - int(clock.now) % 60}")
    client_redis = cache._cache.get_client(counter, write=True)
    client_redis.set(counter, 247, ex=65)
    for _ in range(3):
        assert _get(client, DRF, api_key, ip).status_code == 200
    _assert_limited(_get(client, DRF, api_key, ip), "ip", 250, retry_after=45)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.django_db
def test_redis_down_fails_open_without_a_round_trip_per_request(client, api_key, settings, clock, monkeypatch):
    """A dead cache costs protection, never a request: served, and the cache is not tried again for
    OUTAGE_RETRY_SECONDS (each try would cost a connect attempt)."""
    require_redis()
    settings.API_RATE_LIMIT_PER_KEY = 1
    settings.API_RATE_LIMIT_PER_IP = 1
    claims = []
    real_claim = ratelimit._claim
    monkeypatch.setattr(ratelimit, "_claim", lambda counter, n: claims.append(counter) or real_claim(counter, n))
    with override_settings(CACHES=_redis_caches(f"redis://127.0.0.1:{_closed_port()}/0")):
        ip = _address()
        for _ in range(5):
            assert _get(client, DRF, api_key, ip).status_code == 200
            assert _get(client, FAST, api_key, ip).status_code == 200
    assert len(claims) == 1  # the first failure; the other nine requests skipped the limiter
