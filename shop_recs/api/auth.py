"""REST API authentication by store API key, and the permission classes built on it."""

from __future__ import annotations

import hmac
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from shop_recs.platform.conf import setting
from shop_recs.stores.models import ApiKey, Store, hash_api_key

# Writing last_used_at on every request would make every read a write; once a minute is enough.
_LAST_USED_RESOLUTION = timedelta(minutes=1)


class StoreClient:
    """The principal of an API request: a shop frontend acting as one store, not a Django user."""

    is_authenticated = True
    is_anonymous = False
    is_staff = False
    is_superuser = False

    def __init__(self, store: Store, api_key: ApiKey):
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
        prefix = ApiKey.prefix_of(raw)
        if prefix is None:
            raise exceptions.AuthenticationFailed(_("Malformed API key."))
        key = ApiKey.objects.select_related("store").filter(prefix=prefix).first()
        if key is None or not key.matches(raw):
            raise exceptions.AuthenticationFailed(_("Invalid API key."))
        if not key.is_active:
            raise exceptions.AuthenticationFailed(_("This API key has been revoked."))
        now = timezone.now()
        if key.last_used_at is None or now - key.last_used_at > _LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        return StoreClient(key.store, key), key

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


@dataclass
class _KnownKey:
    key_id: int
    key_hash: str
    store_values: list[Any]
    read_at: float
    last_used_at: datetime | None


_STORE_FIELDS = [f.attname for f in Store._meta.concrete_fields]
_STORE_DATETIMES = {f.attname for f in Store._meta.concrete_fields if f.get_internal_type() == "DateTimeField"}
_known_keys: dict[str, _KnownKey] = {}
_known_lock = threading.Lock()


def api_key_cache_seconds() -> float:
    """``API_KEY_CACHE_SECONDS`` (default 5): how long a process trusts a key it has read.

    A key revoked in this process (dashboard, admin: ``ApiKey.revoke``) is refused at once; other
    processes refuse it within this many seconds. Stored data never changes that: only the hash is
    kept, here as in the database.
    """
    return float(setting("API_KEY_CACHE_SECONDS", 5.0))


def forget_api_key(prefix: str | None = None) -> None:
    """Drop one cached key (by prefix) or all of them; the next request reads it again."""
    with _known_lock:
        if prefix is None:
            _known_keys.clear()
        else:
            _known_keys.pop(prefix, None)


def _as_datetime(value: Any) -> Any:
    """Aware datetime from what a raw cursor returns (SQLite: naive datetime or text; PostgreSQL: aware)."""
    parsed = parse_datetime(value) if isinstance(value, str) else value
    if parsed is not None and timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, UTC)
    return parsed


def _read_key(prefix: str) -> _KnownKey | None:
    """The live key with this prefix and its store's row, in one raw query (``None``: none or revoked)."""
    qn = connection.ops.quote_name
    sql = (
        f"SELECT k.id, k.key_hash, k.revoked_at, k.last_used_at, "  # noqa: S608 - quoted identifiers only
        f"{', '.join('s.' + qn(f) for f in _STORE_FIELDS)} FROM {qn(ApiKey._meta.db_table)} k "
        f"JOIN {qn(Store._meta.db_table)} s ON s.id = k.store_id WHERE k.prefix = %s"
    )
    with connection.cursor() as cur:
        cur.execute(sql, [prefix])
        row = cur.fetchone()
    if row is None or row[2] is not None:
        return None
    values = [
        _as_datetime(v) if v is not None and f in _STORE_DATETIMES else v
        for f, v in zip(_STORE_FIELDS, row[4:], strict=True)
    ]
    last_used = _as_datetime(row[3]) if row[3] is not None else None
    return _KnownKey(int(row[0]), row[1], values, time.monotonic(), last_used)


def store_for_raw_key(raw: str | None) -> Store | None:
    """The store a raw API key belongs to, or ``None`` for a malformed, unknown or revoked key.

    The same checks as :class:`ApiKeyAuthentication` (prefix lookup, constant-time hash comparison,
    revoked, ``last_used_at`` written at most once a minute) without a query on most requests: the
    key row is re-read every :func:`api_key_cache_seconds`. Each call returns a fresh ``Store``
    instance, so nothing a request caches on it leaks into the next request.
    """
    prefix = ApiKey.prefix_of(raw) if raw else None
    if prefix is None:
        return None
    known = _known_keys.get(prefix)
    if known is None or time.monotonic() - known.read_at >= api_key_cache_seconds():
        known = _read_key(prefix)
        with _known_lock:
            if known is None:
                _known_keys.pop(prefix, None)
                return None
            _known_keys[prefix] = known
    if not hmac.compare_digest(known.key_hash, hash_api_key(raw)):  # type: ignore[arg-type]
        return None
    now = timezone.now()
    if known.last_used_at is None or now - known.last_used_at > _LAST_USED_RESOLUTION:
        known.last_used_at = now
        ApiKey.objects.filter(pk=known.key_id).update(last_used_at=now)
    return Store.from_db(connection.alias, _STORE_FIELDS, known.store_values)
