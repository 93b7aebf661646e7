"""Rate limits per API key and per client address for every ``/api/v1/`` request (issue #16).

:class:`RateLimitMiddleware` runs before any view, so the plain-Django fast path
(``shop_recs.api.fastpath``) and DRF are limited alike. Limits are requests per minute
(``API_RATE_LIMIT_PER_KEY``, ``API_RATE_LIMIT_PER_IP``; 0 = off), counted in fixed one-minute windows
in the shared cache (Redis when ``REDIS_URL`` is set, so every web process counts together). A
refused request gets a JSON 429 ``rate_limited`` with ``Retry-After`` (the seconds left in the window).

**Leases.** A Redis round trip per request would cost more than the budget allows (~60 µs of client
CPU for INCRBY+EXPIRE on a ~400 µs request). Each process therefore claims its tokens in leases:
``INCRBY <lease>`` plus ``EXPIRE`` in one pipelined round trip, the lease being 1% of the limit
(at least 1, at most :data:`LEASE_MAX`), and spends them locally. So a key costs at most about 100
round trips per minute per process whatever its traffic, and a key that is over its limit costs none
until its window ends. The price: tokens a process has claimed and not used are not available to the
others, so with W processes a client may be refused when up to W leases (W% of the limit) are still
unspent. Small limits (under 100 a minute) have leases of 1 and are exact.

**Keys only count once verified**: the per-key limit uses the key check the views use (memoised on the
request, ``auth.request_key_check``), so nobody can spend another merchant's quota by sending its
key prefix with a wrong secret (wrong keys are the wrong-key throttle's business, ``auth.note_failed_key``).

**Fail open.** When the cache cannot be reached nothing is limited (logged at most every 30 s), and
the cache is not tried again for :data:`OUTAGE_RETRY_SECONDS`, so a Redis outage costs protection,
never a request nor a timeout per request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.core.exceptions import MiddlewareNotUsed
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions

from shop_recs.api import auth
from shop_recs.api.errors import API_PREFIX
from shop_recs.platform import metrics

logger = logging.getLogger(__name__)

#: Length of a counting window, seconds (limits are per minute).
WINDOW_SECONDS = 60
#: A process claims at most this many tokens of one counter per round trip.
LEASE_MAX = 100
#: After a cache error, the limiter is skipped in this process for this many seconds.
OUTAGE_RETRY_SECONDS = 2.0
#: Local lease entries kept before those of past windows are dropped (one per key and address).
MAX_LEASES = 50_000
_LOG_EVERY = 30.0

_AUTH = auth.ApiKeyAuthentication()


@dataclass
class _Lease:
    window: int  # start of the window, epoch seconds
    tokens: int = 0  # claimed from the shared counter and not yet spent here
    exhausted: bool = False  # the shared counter is past the limit: refuse until the window ends


_leases: dict[tuple[str, str], _Lease] = {}
_lock = threading.Lock()
_outage_until = 0.0
_last_logged = 0.0


def lease_size(limit: int) -> int:
    """Tokens claimed per round trip: 1% of the limit, between 1 and :data:`LEASE_MAX`."""
    return max(1, min(LEASE_MAX, limit // 100))


def _claim(counter: str, amount: int) -> int:
    """Add ``amount`` to the shared counter of this window; its new total (one round trip)."""
    cache = caches["default"]
    key = cache.make_and_validate_key(counter)
    if isinstance(cache, RedisCache):
        # INCRBY and EXPIRE pipelined: one round trip, and INCRBY is atomic across processes.
        client = cache._cache.get_client(key, write=True)
        pipe = client.pipeline(transaction=False)
        pipe.incrby(key, amount)
        pipe.expire(key, WINDOW_SECONDS + 5)
        total, _ttl_set = pipe.execute()
        return int(total)
    # Other backends (local memory in tests and the embedded mode): add-then-incr, atomic per backend.
    cache.add(counter, 0, timeout=WINDOW_SECONDS + 5)
    return int(cache.incr(counter, amount))


def _log_outage(exc: BaseException) -> None:
    global _last_logged
    now = time.monotonic()
    if _last_logged and now - _last_logged < _LOG_EVERY:
        return
    _last_logged = now
    logger.warning("rate limits off for now: the cache is unreachable (%s: %s)", type(exc).__name__, exc)


def take(kind: str, ident: str, limit: int) -> int | None:
    """Spend one request of ``ident``'s per-minute ``limit``; ``None`` if allowed, else the seconds
    until its window ends (answer 429). ``kind`` names the counter family (``api_key``, ``ip``)."""
    global _outage_until
    now = time.time()
    window = int(now) - int(now) % WINDOW_SECONDS
    retry_after = max(1, window + WINDOW_SECONDS - int(now))
    with _lock:
        lease = _leases.get((kind, ident))
        if lease is None or lease.window != window:
            if len(_leases) >= MAX_LEASES:
                for stale in [k for k, v in _leases.items() if v.window != window]:
                    del _leases[stale]
            lease = _leases[(kind, ident)] = _Lease(window)
        if lease.exhausted:
            return retry_after
        if lease.tokens > 0:
            lease.tokens -= 1
            return None
    if time.monotonic() < _outage_until:
        return None
    amount = lease_size(limit)
    try:
        total = _claim(f"ratelimit:{kind}:{ident}:{window}", amount)
    except Exception as exc:  # noqa: BLE001 - redis-py raises ConnectionError, TimeoutError, ...
        _outage_until = time.monotonic() + OUTAGE_RETRY_SECONDS
        _log_outage(exc)
        return None
    granted = min(amount, limit - (total - amount))
    with _lock:
        if granted <= 0:
            lease.exhausted = True
            return retry_after
        lease.tokens += granted - 1
    return None


def reset() -> None:
    """Forget this process's leases and outage back-off (tests)."""
    global _outage_until, _last_logged
    with _lock:
        _leases.clear()
    _outage_until = _last_logged = 0.0


_MESSAGES = {
    "api_key": "Too many requests with this API key: at most {limit} a minute. Retry after {wait} s.",
    "ip": "Too many requests from this address: at most {limit} a minute. Retry after {wait} s.",
}


def too_many_requests(request: HttpRequest, limit_kind: str, limit: int, wait: int) -> JsonResponse:
    """The 429 in the API's error shape (``shop_recs.api.errors``), with ``Retry-After``."""
    body = {
        "code": "rate_limited",
        "message": _MESSAGES[limit_kind].format(limit=limit, wait=wait),
        "details": {"limit": limit_kind, "requests_per_minute": limit, "retry_after": wait},
    }
    request_id = request.META.get("HTTP_X_REQUEST_ID")
    if request_id:
        body["request_id"] = request_id[:200]
    response = JsonResponse({"error": body}, status=429)
    response["Retry-After"] = str(wait)
    return response


def _verified_key(request: HttpRequest) -> auth.ApiKeyIdentity | None:
    """The request's API key if it is a valid live one (memoised for the view), else ``None``."""
    try:
        raw = _AUTH._raw_key(request)
    except exceptions.APIException:
        return None  # a malformed header: the view answers it
    if raw is None:
        return None
    try:
        check = auth.request_key_check(request, raw)
    except (OperationalError, InterfaceError):
        return None  # the database is down: the view answers 503 (or the outage grace applies)
    return check.key if check.status is auth.KeyStatus.OK else None


def limit_request(request: HttpRequest) -> HttpResponse | None:
    """The 429 for a request over a limit, else ``None``. Per address first (cheap, no key check)."""
    per_ip = int(settings.API_RATE_LIMIT_PER_IP)
    if per_ip > 0:
        wait = take("ip", request.META.get("REMOTE_ADDR", ""), per_ip)
        if wait is not None:
            metrics.rate_limited("ip")
            return too_many_requests(request, "ip", per_ip, wait)
    per_key = int(settings.API_RATE_LIMIT_PER_KEY)
    if per_key > 0:
        key = _verified_key(request)
        if key is not None:
            wait = take("api_key", key.prefix, per_key)
            if wait is not None:
                metrics.rate_limited("api_key")
                return too_many_requests(request, "api_key", per_key, wait)
    return None


class RateLimitMiddleware:
    """Applies :func:`limit_request` to ``/api/v1/``. Not loaded at all when both limits are 0 at
    start-up (``MiddlewareNotUsed``), so switching the limits off costs nothing per request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        if int(settings.API_RATE_LIMIT_PER_IP) <= 0 and int(settings.API_RATE_LIMIT_PER_KEY) <= 0:
            raise MiddlewareNotUsed
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith(API_PREFIX):
            refused = limit_request(request)
            if refused is not None:
                return refused
        return self.get_response(request)
