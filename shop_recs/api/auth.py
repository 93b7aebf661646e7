"""REST API authentication by store API key, and the permission classes built on it.

Two kinds of key (``ApiKey.kind``): a *secret* key (``sr_…``) for the shop's servers may call every
endpoint; a *publishable* key (``pk_…``), which sits in the shop's web pages and so is public, may call
only the storefront routes in :data:`PUBLISHABLE_ROUTES`, and from a browser only on one of its
``allowed_origins``. Both rules are checked by :func:`publishable_refusal`, which the DRF permission
(:class:`HasStoreApiKey`) and the serving fast path (``shop_recs.api.fastpath``) both call, so no path
serves a publishable key more than the allow-list grants.
"""

from __future__ import annotations

import enum
import hmac
import logging
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import InterfaceError, OperationalError, connection
from django.http import HttpRequest
from django.urls import Resolver404, resolve
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from shop_recs.api import sql as api_sql
from shop_recs.platform import metrics
from shop_recs.platform.cache import register_process_cache
from shop_recs.stores.models import ApiKey, KeyKind, Store, hash_api_key

# Writing last_used_at on every request would make every read a write; once a minute is enough.
_LAST_USED_RESOLUTION = timedelta(minutes=1)
#: While the database is unreachable, a failed re-read of a key is tried again after this many
#: seconds (not on every request: a dead server must not be hammered by every request).
OUTAGE_RETRY_SECONDS = 2.0
#: The errors that mean "the database cannot be reached" (not "this query is wrong").
DB_UNREACHABLE = (OperationalError, InterfaceError)
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApiKeyIdentity:
    """Which key authenticated a request (DRF's ``request.auth``): its id, lookup prefix, kind and
    (publishable keys) the browser origins it may be used from."""

    pk: int
    prefix: str
    kind: str = KeyKind.SECRET.value
    allowed_origins: tuple[str, ...] = ()

    @property
    def is_publishable(self) -> bool:
        return self.kind == KeyKind.PUBLISHABLE


class StoreClient:
    """The principal of an API request: a shop frontend acting as one store, not a Django user."""

    is_authenticated = True
    is_anonymous = False
    is_staff = False
    is_superuser = False

    def __init__(self, store: Store, api_key: ApiKeyIdentity):
        self.store = store
        self.api_key = api_key
        self.pk = None

    def __str__(self) -> str:
        return f"api:{self.store.slug}:{self.api_key.prefix}"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer sr_<prefix>_<secret>`` (``X-Api-Key`` is accepted too)."""

    keyword = "Bearer"

    def authenticate(self, request):
        raw = self._raw_key(request)
        if raw is None:
            return None
        # The same check (and cache) the serving hot path uses: one lookup, one hash comparison,
        # one revocation rule; done once per request (the rate limiter or the fast path may have).
        result = request_key_check(getattr(request, "_request", request), raw)
        if result.status is not KeyStatus.OK:
            retry_after = note_failed_key(request)
            if retry_after is not None:
                raise exceptions.Throttled(wait=retry_after, detail=str(_("Too many requests with a wrong API key.")))
            raise exceptions.AuthenticationFailed(_REFUSALS[result.status])
        assert result.store is not None and result.key is not None
        return StoreClient(result.store, result.key), result.key

    def authenticate_header(self, request) -> str:
        return self.keyword

    def _raw_key(self, request) -> str | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if header:
            parts = header.split()
            if len(parts) != 2 or parts[0] != self.keyword:
                raise exceptions.AuthenticationFailed(_("Use 'Authorization: Bearer <API key>'."))
            return parts[1]
        return request.META.get("HTTP_X_API_KEY") or None


class HasStoreApiKey(permissions.BasePermission):
    """Allows only requests authenticated by a live store API key, and a publishable key only where
    :func:`publishable_refusal` lets it (403 ``key_not_allowed`` / ``origin_not_allowed``)."""

    def has_permission(self, request, view) -> bool:
        if not isinstance(request.user, StoreClient):
            return False
        refusal = publishable_refusal(request, request.user.api_key)
        if refusal is not None:
            raise refusal
        return True


# --- publishable keys: the storefront allow-list and the origin check ------------------------------

_READ = frozenset({"GET", "HEAD"})
_WRITE = frozenset({"POST"})

#: What a publishable key may call: URL name -> methods. An allow-list on purpose: a route that is not
#: here (a new endpoint included) answers a publishable key 403 ``key_not_allowed``. Reads are the
#: storefront's lists (recommendations, popular/trending, similar, frequently bought together, search,
#: ads); writes are what a browser itself reports: one event at a time (``POST /events``) and an ad
#: click. Not ``/events/batch``: a page reports what its visitor just did, one event at a time, and a
#: 10,000-row batch under a public key would let anyone who copies the key from the page source pour
#: fabricated history into the store in one request (backfills and server-side tracking use a secret
#: key). Nothing that changes the catalog, customers or their data, or reads a customer's profile.
PUBLISHABLE_ROUTES: dict[str, frozenset[str]] = {
    "api-recs-customer": _READ,
    "api-recs-session": _WRITE,  # a POST only to carry the viewed skus; it reads recommendations
    "api-product-similar": _READ,
    "api-product-fbt": _READ,
    "api-popular": _READ,
    "api-trending": _READ,
    "api-search": _READ,
    "api-ads": _READ,
    "api-ad-click": _WRITE,
    "api-event": _WRITE,
}

#: Set on the Django request when a publishable key was used from one of its allowed origins: the
#: CORS check (``shop_recs.api.cors``) then lets that origin read the response.
CORS_ORIGIN_ATTR = "shop_recs_cors_origin"


class KeyNotAllowed(exceptions.PermissionDenied):
    default_code = "key_not_allowed"
    default_detail = _("A publishable key cannot call this endpoint; call it from your server with a secret key.")


class OriginNotAllowed(exceptions.PermissionDenied):
    default_code = "origin_not_allowed"
    default_detail = _("This publishable key may not be used from this origin.")


def publishable_refusal(request: Any, key: ApiKeyIdentity) -> exceptions.PermissionDenied | None:
    """Why this request may not use this key (``None``: it may). Only publishable keys are limited.

    * From a browser (an ``Origin`` header) the origin must be one of the key's ``allowed_origins``
      (exact match): else ``origin_not_allowed``. Without ``Origin`` (a server, a script, curl) the
      request is let through: the origin check exists to stop *other sites' pages* from using the
      key in their visitors' browsers; a server can send any ``Origin`` it likes, and the key is
      public anyway, so refusing header-less requests would protect nothing. What bounds a
      publishable key is the route allow-list, which holds for every caller.
    * The route (URL name) and method must be in :data:`PUBLISHABLE_ROUTES`: else ``key_not_allowed``.

    ``request`` is a Django ``HttpRequest`` or a DRF ``Request`` (which reads through to one).
    """
    if key.kind != KeyKind.PUBLISHABLE:
        return None
    django_request: HttpRequest = getattr(request, "_request", request)
    origin = django_request.headers.get("Origin")
    if origin is not None:
        if origin not in key.allowed_origins:
            return OriginNotAllowed(
                _(
                    "This publishable key may not be used from %(origin)s; add the origin to the key's allowed "
                    "origins in the dashboard."
                )
                % {"origin": origin[:200]}
            )
        # The origin may read this answer, a refusal below included (so its page can show why).
        setattr(django_request, CORS_ORIGIN_ATTR, origin)
    match = django_request.resolver_match
    name = match.url_name if match is not None else None
    if django_request.method not in PUBLISHABLE_ROUTES.get(name or "", frozenset()):
        return KeyNotAllowed(
            _("A publishable key cannot call %(method)s %(path)s; call it from your server with a secret key.")
            % {"method": django_request.method, "path": django_request.path[:200]}
        )
    return None


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Both key kinds in the OpenAPI schema: every operation takes a secret key; the storefront ones
    (:data:`PUBLISHABLE_ROUTES`) a publishable key as well."""

    target_class = "shop_recs.api.auth.ApiKeyAuthentication"
    name = ["SecretKey", "PublishableKey"]

    def get_security_definition(self, auto_schema):
        return [
            {
                "type": "http",
                "scheme": "bearer",
                "description": "A secret store API key (`sr_…`), for the shop's servers: every endpoint. Never put "
                "it in a web page. `X-Api-Key: <key>` is accepted too.",
            },
            {
                "type": "http",
                "scheme": "bearer",
                "description": "A publishable key (`pk_…`), for web pages: only the storefront endpoints "
                "(recommendations, similar, frequently bought together, popular, trending, search, ads, an ad "
                "click, single events), and from a browser only on the key's allowed origins (CORS).",
            },
        ]

    def get_security_requirement(self, auto_schema):
        if publishable_operation(auto_schema.path, auto_schema.method):
            return [{"SecretKey": []}, {"PublishableKey": []}]
        return [{"SecretKey": []}]


def publishable_operation(path: str, method: str) -> bool:
    """Whether the schema operation ``method path`` (``/api/v1/products/{sku}/similar``) is one a
    publishable key may call: the path is resolved to its URL name, so the schema and the check
    read the same allow-list."""
    concrete = re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000000", path)
    try:
        match = resolve(concrete)
    except Resolver404:
        return False
    return method.upper() in PUBLISHABLE_ROUTES.get(match.url_name or "", frozenset())


# --- the serving hot path's key check: in process, refreshed every few seconds -------------------


class KeyStatus(enum.Enum):
    OK = "ok"
    MALFORMED = "malformed"
    INVALID = "invalid"  # unknown prefix, or the secret does not match
    REVOKED = "revoked"


_REFUSALS = {
    KeyStatus.MALFORMED: _("Malformed API key."),
    KeyStatus.INVALID: _("Invalid API key."),
    KeyStatus.REVOKED: _("This API key has been revoked."),
}


@dataclass(frozen=True)
class KeyCheck:
    """The outcome of :func:`check_api_key`: ``store`` and ``key`` are set only when ``status`` is OK."""

    status: KeyStatus
    store: Store | None = None
    key: ApiKeyIdentity | None = None


@dataclass
class _KnownKey:
    key_id: int
    key_hash: str
    revoked: bool
    store_values: list[Any]
    read_at: float  # when the database last confirmed this row
    last_used_at: datetime | None
    #: During an outage: no new read of this key before this monotonic time (the back-off).
    retry_at: float = 0.0
    kind: str = KeyKind.SECRET.value
    allowed_origins: tuple[str, ...] = ()


_known_keys: dict[str, _KnownKey] = {}
_known_lock = threading.Lock()


def api_key_cache_seconds() -> float:
    """``API_KEY_CACHE_SECONDS`` (default 5): how long a process trusts a key it has read.

    A key revoked in this process (dashboard, admin: ``ApiKey.revoke``) is refused at once; other
    processes refuse it within this many seconds. Stored data never changes that: only the hash is
    kept, here as in the database.
    """
    return settings.API_KEY_CACHE_SECONDS


def api_key_outage_grace_seconds() -> float:
    """``API_KEY_OUTAGE_GRACE_SECONDS`` (default 300): while the database is unreachable, a key this
    process read (and found live) at most this many seconds ago is still accepted from its copy. The
    price, stated in docs/serving.md: a key revoked in another process during an outage is accepted
    here for up to this long. 0: no grace (every request answers 503 once the copy expires)."""
    return float(settings.API_KEY_OUTAGE_GRACE_SECONDS)


def forget_api_key(prefix: str | None = None, store_id: int | None = None) -> None:
    """Drop one cached key (by prefix) or all of them (also for a ``store_id``: keys are cheap to
    re-read); the next request reads it again."""
    with _known_lock:
        if prefix is None:
            _known_keys.clear()
        else:
            _known_keys.pop(prefix, None)


register_process_cache("api.keys", lambda store_id=None: forget_api_key(store_id=store_id))


def forget_saved_api_key(sender: type[ApiKey], instance: ApiKey, **kwargs: Any) -> None:
    """``post_save``/``post_delete`` receiver for ``ApiKey`` (connected in ``ApiConfig.ready``): a
    revoked, edited or deleted key is re-read on its next use in this process, and the set of origins
    CORS preflights may come from (``shop_recs.api.cors``) is read again."""
    # Imported here: shop_recs.api.cors imports this module (its origin marker and DB error types).
    from shop_recs.api.cors import forget_publishable_origins

    forget_api_key(instance.prefix)
    forget_publishable_origins()


def _read_key(prefix: str) -> _KnownKey | None:
    """The key with this prefix (live or revoked) and its store's row (``None``: no such key)."""
    row = api_sql.read_api_key(prefix)
    if row is None:
        return None
    return _KnownKey(
        row.key_id,
        row.key_hash,
        row.revoked,
        row.store_values,
        time.monotonic(),
        row.last_used_at,
        kind=row.kind,
        allowed_origins=row.allowed_origins,
    )


def check_api_key(raw: str | None) -> KeyCheck:
    """The one API key check, for DRF (:class:`ApiKeyAuthentication`) and the serving hot path.

    Prefix lookup, constant-time hash comparison (before anything about the key is revealed),
    revocation, and ``last_used_at`` written at most once a minute, without a query on most
    requests: the key row (live or revoked) is re-read every :func:`api_key_cache_seconds`, and
    ``ApiKey.revoke`` drops it from this process's cache at once. Each OK result carries a fresh
    ``Store`` instance, so nothing a request caches on it leaks into the next request.

    While the database is unreachable, a copy confirmed within :func:`api_key_outage_grace_seconds`
    keeps answering (re-read every ``OUTAGE_RETRY_SECONDS``); without one the connection error is
    raised, and the API answers it with a 503 (``shop_recs.api.errors``).
    """
    prefix = ApiKey.prefix_of(raw) if raw else None
    if prefix is None:
        return KeyCheck(KeyStatus.MALFORMED)
    known = _known_keys.get(prefix)
    if known is None or time.monotonic() - known.read_at >= api_key_cache_seconds():
        metrics.cache_lookup("api_key", False)
        known = _fresh_key(prefix, known)
        if known is None:
            return KeyCheck(KeyStatus.INVALID)
    else:
        metrics.cache_lookup("api_key", True)
    if not hmac.compare_digest(known.key_hash, hash_api_key(raw)):  # type: ignore[arg-type]
        return KeyCheck(KeyStatus.INVALID)
    if known.revoked:
        return KeyCheck(KeyStatus.REVOKED)
    now = timezone.now()
    if known.last_used_at is None or now - known.last_used_at > _LAST_USED_RESOLUTION:
        known.last_used_at = now
        try:
            ApiKey.objects.filter(pk=known.key_id).update(last_used_at=now)
        except DB_UNREACHABLE:
            # Bookkeeping only: the request is served anyway, the next minute's request writes it.
            logger.warning("database unreachable: last_used_at of API key %s not written", prefix)
    store = Store.from_db(connection.alias, api_sql.STORE_FIELDS, known.store_values)
    return KeyCheck(KeyStatus.OK, store, ApiKeyIdentity(known.key_id, prefix, known.kind, known.allowed_origins))


#: Where :func:`request_key_check` memoises its answer on the Django request.
_REQUEST_MEMO = "_shop_recs_key_check"


def request_key_check(request: Any, raw: str) -> KeyCheck:
    """:func:`check_api_key` once per request: the rate limiter (``shop_recs.api.ratelimit``), the fast
    path and DRF's authentication each ask, and a fast-path request that falls through to DRF asks
    twice. ``request`` is the Django ``HttpRequest``."""
    memo = getattr(request, _REQUEST_MEMO, None)
    if memo is not None and memo[0] == raw:
        return memo[1]
    result = check_api_key(raw)
    setattr(request, _REQUEST_MEMO, (raw, result))
    return result


def _fresh_key(prefix: str, known: _KnownKey | None) -> _KnownKey | None:
    """Re-read an expired (or unknown) key; while the database is unreachable, keep a copy confirmed
    within :func:`api_key_outage_grace_seconds` (re-read at most every ``OUTAGE_RETRY_SECONDS``).
    Raises the connection error for a key this process has no usable copy of (the API answers 503)."""
    now = time.monotonic()
    usable = known is not None and now - known.read_at < api_key_outage_grace_seconds()
    if usable and now < known.retry_at:  # type: ignore[union-attr]
        return known
    try:
        fresh = _read_key(prefix)
    except DB_UNREACHABLE:
        if not usable:
            raise
        assert known is not None
        known.retry_at = now + OUTAGE_RETRY_SECONDS
        age = now - known.read_at
        logger.warning("database unreachable: API key %s accepted from this process's copy (%.0f s old)", prefix, age)
        return known
    with _known_lock:
        if fresh is None:
            _known_keys.pop(prefix, None)
        else:
            _known_keys[prefix] = fresh
    return fresh


def store_for_raw_key(raw: str | None) -> Store | None:
    """The store a raw API key belongs to, or ``None`` for a malformed, unknown or revoked key
    (:func:`check_api_key`, for callers that need no reason)."""
    return check_api_key(raw).store


# --- throttling of wrong keys ----------------------------------------------------------------------


def note_failed_key(request: Any) -> int | None:
    """Count a wrong key from the request's address; past ``API_KEY_FAILURE_LIMIT`` in the current
    ``API_KEY_FAILURE_WINDOW_SECONDS`` window, the seconds until the window ends (answer 429).

    Only refused requests are counted and checked, so a valid key never pays for this. Counts live in
    the shared cache (Redis when configured), so every web process sees them; without a working
    cache nothing is throttled, which costs protection, never a request.
    """
    window = int(settings.API_KEY_FAILURE_WINDOW_SECONDS)
    limit = int(settings.API_KEY_FAILURE_LIMIT)
    if limit <= 0 or window <= 0:
        return None
    now = int(time.time())
    start = now - now % window
    key = f"apikey-failures:{request.META.get('REMOTE_ADDR', '')}:{start}"
    try:
        cache.add(key, 0, timeout=window + 5)
        count = cache.incr(key)
    except Exception:  # noqa: BLE001 - a cache outage must not turn a 401 into a 500
        return None
    return max(1, start + window - now) if count > limit else None
