"""CORS for the storefront: which browser origins may call ``/api/v1/`` (django-cors-headers).

django-cors-headers answers the preflights and writes the ``Access-Control-*`` headers; *which*
origin it allows is decided here, through its ``check_request_enabled`` signal (no static
``CORS_ALLOWED_ORIGINS``: the origins are data, each publishable key lists its own):

* **Preflight** (``OPTIONS`` with ``Access-Control-Request-Method``; browsers send no key with it):
  allowed when *some* active publishable key lists the origin. The set of those origins is read once
  per :func:`origins_cache_seconds` per process and dropped at once when a key is saved or deleted in
  this process (``auth.forget_saved_api_key``), like the key cache. A preflight never needs a key:
  it is answered by the middleware before any view (so before authentication) runs.
* **Actual request**: allowed only when the request's own key is publishable and lists the origin
  (``auth.publishable_refusal`` marks the request; an answer given before it ran, such as the rate
  limiter's 429, asks the key itself). An origin that another store's key lists can send the
  preflight, but cannot read this store's answers; a secret key's answers are never readable by a page.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from rest_framework import exceptions

from shop_recs.api.auth import CORS_ORIGIN_ATTR, DB_UNREACHABLE, ApiKeyAuthentication, logger, request_key_check
from shop_recs.platform.cache import register_process_cache
from shop_recs.stores.models import ApiKey, KeyKind

API_PREFIX = "/api/v1/"
_AUTH = ApiKeyAuthentication()

_origins: frozenset[str] | None = None
_origins_read_at = 0.0
_origins_lock = threading.Lock()


def origins_cache_seconds() -> float:
    """How long a process trusts its set of publishable origins: ``API_KEY_CACHE_SECONDS``, the same
    bound as for a key itself (a key created or revoked in another process counts within it)."""
    return float(settings.API_KEY_CACHE_SECONDS)


def forget_publishable_origins(store_id: int | None = None) -> None:
    """Drop this process's set of origins (a key was saved or deleted); the next preflight reads it."""
    global _origins
    with _origins_lock:
        _origins = None


register_process_cache("api.cors_origins", forget_publishable_origins)


def publishable_origins() -> frozenset[str]:
    """Every origin an active publishable key of any store lists.

    Across stores on purpose: a preflight carries no key, so no store is known yet; this is the only
    unscoped read here, and it reads nothing but origins. While the database is unreachable the last
    set read stays in use (a preflight is not worth a 503).
    """
    global _origins, _origins_read_at
    now = time.monotonic()
    current = _origins
    if current is not None and now - _origins_read_at < origins_cache_seconds():
        return current
    try:
        # all stores: a preflight carries no key, so no store is known yet; only origins are read.
        rows = ApiKey.objects.active().filter(kind=KeyKind.PUBLISHABLE).values_list("allowed_origins", flat=True)
        fresh = frozenset(origin for origins in rows for origin in (origins or ()) if isinstance(origin, str))
    except DB_UNREACHABLE:
        logger.warning("database unreachable: CORS preflights answered from this process's last origin list")
        return current or frozenset()
    with _origins_lock:
        _origins, _origins_read_at = fresh, now
    return fresh


def is_preflight(request: HttpRequest) -> bool:
    return request.method == "OPTIONS" and "access-control-request-method" in request.headers


def allow_cors(sender: Any, request: HttpRequest, **kwargs: Any) -> bool:
    """django-cors-headers' ``check_request_enabled`` receiver: may this request's ``Origin`` read
    the answer? Only ever ``True`` under ``/api/v1/`` (the signal is also asked about other paths)."""
    if not request.path_info.startswith(API_PREFIX):
        return False
    origin = request.headers.get("Origin")
    if not origin:
        return False
    if is_preflight(request):
        return origin in publishable_origins()
    if getattr(request, CORS_ORIGIN_ATTR, None) == origin:
        return True
    # Answered before the API permission ran (a 429 from the rate limiter, a 503): the key's own origins
    # still decide, so the page can read Retry-After. The key check is memoised on the request.
    return _key_lists_origin(request, origin)


def _key_lists_origin(request: HttpRequest, origin: str) -> bool:
    try:
        raw = _AUTH._raw_key(request)
        result = request_key_check(request, raw) if raw else None
    except (exceptions.APIException, *DB_UNREACHABLE):
        return False
    key = result.key if result is not None else None
    return key is not None and key.is_publishable and origin in key.allowed_origins
