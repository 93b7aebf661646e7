"""REST API authentication by store API key, and the permission classes built on it."""

from __future__ import annotations

import enum
import hmac
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import InterfaceError, OperationalError, connection
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from shop_recs.api import sql as api_sql
from shop_recs.platform.cache import register_process_cache
from shop_recs.stores.models import ApiKey, Store, hash_api_key

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
    """Which key authenticated a request (DRF's ``request.auth``): its id and lookup prefix."""

    pk: int
    prefix: str


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
        # one revocation rule.
        result = check_api_key(raw)
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
    """Allows only requests authenticated by a live store API key."""

    def has_permission(self, request, view) -> bool:
        return isinstance(request.user, StoreClient)


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "shop_recs.api.auth.ApiKeyAuthentication"
    name = "StoreApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "A store API key (sr_…)."}


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
    revoked, edited or deleted key is re-read on its next use in this process."""
    forget_api_key(instance.prefix)


def _read_key(prefix: str) -> _KnownKey | None:
    """The key with this prefix (live or revoked) and its store's row (``None``: no such key)."""
    row = api_sql.read_api_key(prefix)
    if row is None:
        return None
    return _KnownKey(row.key_id, row.key_hash, row.revoked, row.store_values, time.monotonic(), row.last_used_at)


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
        known = _fresh_key(prefix, known)
        if known is None:
            return KeyCheck(KeyStatus.INVALID)
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
    return KeyCheck(KeyStatus.OK, store, ApiKeyIdentity(known.key_id, prefix))


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
