"""The API layer's raw SQL (allow-listed in ``tests/test_raw_sql.py``).

The key lookup runs before any store is known: it is the query that *finds* the store, so it is
the one lookup here that cannot take a ``store_id``. It reads only the ``stores_apikey`` row with
the given prefix (a unique column) and that key's own store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from shop_recs.stores.models import ApiKey, Store

STORE_FIELDS: list[str] = [f.attname for f in Store._meta.concrete_fields]
_STORE_DATETIMES = {f.attname for f in Store._meta.concrete_fields if f.get_internal_type() == "DateTimeField"}


@dataclass(frozen=True)
class ApiKeyRow:
    """One ``ApiKey`` row joined with its store's row (``store_values`` in ``STORE_FIELDS`` order)."""

    key_id: int
    key_hash: str
    revoked: bool
    last_used_at: datetime | None
    store_values: list[Any]
    kind: str = "secret"
    allowed_origins: tuple[str, ...] = ()


def _as_datetime(value: Any) -> Any:
    """Aware datetime from what a raw cursor returns (SQLite: naive datetime or text; PostgreSQL: aware)."""
    parsed = parse_datetime(value) if isinstance(value, str) else value
    if parsed is not None and timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, UTC)
    return parsed


def read_api_key(prefix: str) -> ApiKeyRow | None:
    """The key with this prefix (live or revoked) and its store's row in one query; ``None``: unknown."""
    qn = connection.ops.quote_name
    sql = (
        f"SELECT k.id, k.key_hash, k.revoked_at, k.last_used_at, k.kind, k.allowed_origins, "  # noqa: S608 - quoted identifiers only
        f"{', '.join('s.' + qn(f) for f in STORE_FIELDS)} FROM {qn(ApiKey._meta.db_table)} k "
        f"JOIN {qn(Store._meta.db_table)} s ON s.id = k.store_id WHERE k.prefix = %s"
    )
    with connection.cursor() as cur:
        cur.execute(sql, [prefix])
        row = cur.fetchone()
    if row is None:
        return None
    values = [
        _as_datetime(v) if v is not None and f in _STORE_DATETIMES else v
        for f, v in zip(STORE_FIELDS, row[6:], strict=True)
    ]
    last_used = _as_datetime(row[3]) if row[3] is not None else None
    # A JSON column comes back decoded from PostgreSQL (jsonb) and as text from SQLite.
    origins = json.loads(row[5]) if isinstance(row[5], str | bytes) else row[5]
    return ApiKeyRow(int(row[0]), row[1], row[2] is not None, last_used, values, row[4], tuple(origins or ()))
