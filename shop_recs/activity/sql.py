"""The activity app's raw SQL (allow-listed in ``tests/test_raw_sql.py``).

Every function takes the store explicitly (``store_id``) and filters or writes by it: these queries
run with or without an active store scope (importers, Celery tasks), so the store is never implied.
The public write path that uses them is ``shop_recs.activity.ingest``.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Iterator
from datetime import datetime
from itertools import islice

import orjson
from django.db import connection
from psycopg.types.json import set_json_dumps

# Lookups are chunked so an ``IN (...)`` list stays under SQLite's and psycopg's parameter limits.
_LOOKUP_CHUNK = 5_000
_INSERT_CHUNK = 10_000

_COPY_SQL = (
    "COPY activity_event (store_id, customer_id, session_id, event_type, product_id, value, quantity, "
    "order_id, query, timestamp, context, received_at) FROM STDIN (FORMAT BINARY)"
)
# Binary COPY needs the exact column types. It measured ~3x faster than text-mode write_row here
# (10,000 rows: ~20 ms against ~60 ms), on the Python side and the server's parsing side alike.
_COPY_TYPES = [
    "int8",
    "int8",
    "varchar",
    "varchar",
    "int8",
    "float8",
    "int4",
    "varchar",
    "varchar",
    "timestamptz",
    "jsonb",
    "timestamptz",
]

_INSERT_SQL = (
    "INSERT INTO activity_event (store_id, customer_id, session_id, event_type, product_id, value, quantity, "
    "order_id, query, timestamp, context, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _chunks(items: list, size: int) -> Iterator[list]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def copy_events(store_id: int, rows: Iterable[tuple], now: datetime) -> int:
    """PostgreSQL: one binary ``COPY activity_event FROM STDIN`` (rows in ``ingest.EVENT_COLUMNS`` order)."""
    n = 0
    with connection.cursor() as cursor:
        # Django's cursor wrapper forwards ``copy`` to the underlying psycopg 3 cursor.
        with cursor.copy(_COPY_SQL) as copy:
            copy.set_types(_COPY_TYPES)
            write_row = copy.write_row
            for cust, sess, etype, prod, value, qty, order, query, ts, ctx in rows:
                write_row(
                    (
                        store_id,
                        cust,
                        sess or "",
                        etype,
                        prod,
                        None if value is None else float(value),
                        qty,
                        order or "",
                        query or "",
                        ts,
                        ctx,  # the jsonb dumper serialises dicts/lists itself
                        now,
                    )
                )
                n += 1
    return n


def copy_event_rows(rows: list[tuple]) -> int:
    """PostgreSQL: one binary ``COPY activity_event FROM STDIN`` of final rows, each already in
    ``_COPY_SQL`` column order with ``store_id`` first (the caller, ``services``, built them for one
    store). ``write_row`` runs from a C-level ``map``: no Python frame per row besides psycopg's own.

    A numpy encoder of the whole binary payload (structured big-endian arrays gathered into one
    buffer) was tried here: byte-identical rows, but 19-22 ms for 10,000 rows against 10-15 ms for
    ``write_row`` (whose row formatting is psycopg's C code), so it was not kept.
    """
    with connection.cursor() as cursor:
        # The context column's jsonb dumper: orjson instead of the standard library's json.dumps
        # (a few µs a context; a sixth of the rows have one). Only for this psycopg cursor.
        set_json_dumps(_json_dumps, cursor.cursor)
        with cursor.copy(_COPY_SQL) as copy:
            copy.set_types(_COPY_TYPES)
            deque(map(copy.write_row, rows), maxlen=0)
    return len(rows)


def _json_dumps(value: object) -> bytes | str:
    """orjson, or the standard library for what orjson refuses (a non-string key, an integer beyond 64
    bits: validation lets a Python caller pass them) so both store the same jsonb."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value)


def insert_events_sqlite(store_id: int, rows: Iterable[tuple], now: datetime) -> int:
    """SQLite (the embedded mode): one prepared ``executemany`` per chunk.

    ``bulk_create`` measured ~7.5k rows/s here because it builds a model instance and a multi-row
    statement per batch; the raw prepared statement skips both.
    """
    adapt_ts = connection.ops.adapt_datetimefield_value
    received = adapt_ts(now)
    n = 0
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the sqlite3 cursor: "?" placeholders, no Django formatting per row
        it = iter(rows)
        while chunk := list(islice(it, _INSERT_CHUNK)):
            raw.executemany(
                _INSERT_SQL,
                [
                    (
                        store_id,
                        cust,
                        sess or "",
                        etype,
                        prod,
                        None if value is None else float(value),
                        qty,
                        order or "",
                        query or "",
                        adapt_ts(ts),
                        None if ctx is None else json.dumps(ctx),
                        received,
                    )
                    for cust, sess, etype, prod, value, qty, order, query, ts, ctx in chunk
                ],
            )
            n += len(chunk)
    return n


def current_xid() -> int:
    """PostgreSQL: the id of the current transaction (assigned if it has none yet): what write-through
    messages carry so a cached read can tell whether it saw these rows (``changes.events_written``)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_xact_id()::text")
        return int(cursor.fetchone()[0])


# One statement, so one round trip and one commit (autocommit): resolve the sku, find or create the
# customer (only when the sku is known, so a refused event creates nobody), insert the event and, with an
# Idempotency-Key, its record with the stored answer; the record's unique index makes a repeated key fail
# the whole statement. ``ok``: the sku is known (or there is none); ``go``: ``ok`` and the customer exists
# (a concurrent request may be creating it: then nothing is written and the caller takes the full path).
_ONE_EVENT_SQL = """
WITH p AS (SELECT id FROM catalog_product WHERE store_id = %(store)s AND sku = %(sku)s::text),
c0 AS (SELECT id FROM activity_customer WHERE store_id = %(store)s AND external_id = %(customer)s::text),
ok AS (SELECT (%(sku)s::text IS NULL OR EXISTS (SELECT 1 FROM p)) AS ok),
c1 AS (
  INSERT INTO activity_customer (store_id, external_id, country, age_band, gender, created_at)
  SELECT %(store)s, %(customer)s::text, '', '', '', %(now)s::timestamptz
  WHERE %(customer)s::text IS NOT NULL AND NOT EXISTS (SELECT 1 FROM c0) AND (SELECT ok FROM ok)
  ON CONFLICT (store_id, external_id) DO NOTHING RETURNING id
),
c AS (SELECT id FROM c0 UNION ALL SELECT id FROM c1),
go AS (SELECT (SELECT ok FROM ok) AND (%(customer)s::text IS NULL OR EXISTS (SELECT 1 FROM c)) AS go),
e AS (
  INSERT INTO activity_event (store_id, customer_id, session_id, event_type, product_id, value, quantity,
    order_id, query, "timestamp", context, received_at)
  SELECT %(store)s, (SELECT id FROM c LIMIT 1), %(session)s, %(type)s, (SELECT id FROM p), %(value)s::float8,
    %(quantity)s::int4, %(order)s, %(query)s, %(ts)s::timestamptz, %(context)s::jsonb, %(now)s::timestamptz
  WHERE (SELECT go FROM go) RETURNING customer_id, product_id
),
i AS (
  INSERT INTO activity_idempotencyrecord (store_id, endpoint, key, request_hash, response_status, response_body,
    created_at)
  SELECT %(store)s, %(endpoint)s, %(key)s::text, %(hash)s, %(status)s, %(body)s::jsonb, %(now)s::timestamptz
  WHERE %(key)s::text IS NOT NULL AND (SELECT go FROM go) RETURNING 1
)
SELECT (SELECT count(*) FROM e), (SELECT customer_id FROM e), (SELECT product_id FROM e), pg_current_xact_id()::text
"""


def insert_one_event_pg(
    store_id: int, row: tuple, now: datetime, idempotency: tuple[str, str, str, int, str] | None
) -> tuple[int, int | None, int | None, int]:
    """PostgreSQL, outside a transaction: one validated event (``services`` clean-row order, the sku and
    the customer's external id not resolved) in one statement (``_ONE_EVENT_SQL``).

    ``idempotency``: ``(endpoint, key, request hash, status, answer JSON)`` stored with the event.
    Returns ``(rows written: 0 or 1, customer pk, product pk, transaction id)``; 0 when the sku is
    unknown or the customer was being created concurrently (nothing written). A repeated key raises
    ``IntegrityError`` (nothing written).
    """
    customer, session, etype, sku, value, quantity, order_id, query, ts, context = row
    endpoint, key, request_hash, status, body = idempotency or (None, None, None, None, None)
    params = {
        "store": store_id,
        "customer": customer,
        "session": session or "",
        "type": etype,
        "sku": sku,
        "value": value,
        "quantity": quantity,
        "order": order_id or "",
        "query": query or "",
        "ts": ts,
        "context": None if context is None else json.dumps(context),
        "now": now,
        "endpoint": endpoint,
        "key": key,
        "hash": request_hash,
        "status": status,
        "body": body,
    }
    with connection.cursor() as cursor:
        cursor.execute(_ONE_EVENT_SQL, params)
        written, customer_pk, product_pk, xid = cursor.fetchone()
    return int(written), customer_pk, product_pk, int(xid)


def insert_customers_pg(store_id: int, external_ids: list[str], now: datetime) -> list[tuple[str, int]]:
    """PostgreSQL: create the customers (``ON CONFLICT DO NOTHING``); (external_id, pk) of those created.

    One statement for any number of ids (an array parameter, not thousands of placeholders).
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO activity_customer (store_id, external_id, country, age_band, gender, created_at) "
            "SELECT %s, ext, '', '', '', %s FROM unnest(%s::text[]) AS ext "
            "ON CONFLICT (store_id, external_id) DO NOTHING RETURNING external_id, id",
            [store_id, now, external_ids],
        )
        return cursor.fetchall()


def customer_ids(store_id: int, external_ids: list[str]) -> dict[str, int]:
    """external_id -> pk for the given customers that exist in the store."""
    if connection.vendor == "postgresql":
        return _pg_lookup(
            "SELECT external_id, id FROM activity_customer WHERE store_id = %s AND external_id = ANY(%s)",
            store_id,
            external_ids,
        )
    return _chunked_lookup(
        "SELECT external_id, id FROM activity_customer WHERE store_id = %s", "external_id", store_id, external_ids
    )


def product_ids_by_sku(store_id: int, skus: list[str]) -> dict[str, int]:
    """sku -> pk for the given skus that exist in the store (inactive products included)."""
    if connection.vendor == "postgresql":
        return _pg_lookup("SELECT sku, id FROM catalog_product WHERE store_id = %s AND sku = ANY(%s)", store_id, skus)
    return _chunked_lookup("SELECT sku, id FROM catalog_product WHERE store_id = %s", "sku", store_id, skus)


def _chunked_lookup(base_sql: str, column: str, store_id: int, keys: list[str]) -> dict[str, int]:
    """Portable ``key IN (...)`` lookup in raw SQL: the ORM spends ~75 ms building a 5,000-value IN."""
    out: dict[str, int] = {}
    with connection.cursor() as cursor:
        for chunk in _chunks(keys, _LOOKUP_CHUNK):
            placeholders = ", ".join(["%s"] * len(chunk))
            cursor.execute(f"{base_sql} AND {column} IN ({placeholders})", [store_id, *chunk])  # noqa: S608
            out.update(cursor.fetchall())
    return out


def _pg_lookup(sql: str, store_id: int, keys: list[str]) -> dict[str, int]:
    joined = "\n".join(keys) if all(keys) else ""
    if joined and joined.count("\n") == len(keys) - 1:
        # The keys as one newline-separated string split by the server: Django's client-side binding
        # renders a list parameter as an array literal, quoting each element in Python (~7 ms of CPU for
        # a batch's 8,000 customer ids; one string: ~2.5 ms). Only when no key is empty or holds a newline
        # (an id never does), so the split gives back exactly the keys.
        sql = sql.replace("= ANY(%s)", "= ANY(string_to_array(%s, E'\\n'))")
        params = [store_id, joined]
    else:
        params = [store_id, keys]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return dict(cursor.fetchall())


# --- reads of one customer's activity (search's personal re-ranking) ---------------------------------


def customer_pk(store_id: int, external_id: str) -> int | None:
    """The store's customer with this external id (``None`` if unknown): the pk only.

    ``Customer.objects.filter(external_id=...).first()`` compiled a query and built a model instance
    for a pk.
    """
    with connection.cursor() as cur:
        cur.execute(
            "SELECT id FROM activity_customer WHERE store_id = %s AND external_id = %s", [store_id, external_id]
        )
        row = cur.fetchone()
    return int(row[0]) if row else None


def latest_product_events(store_id: int, customer_id: int, limit: int) -> list[tuple[int, str]]:
    """The customer's latest ``limit`` product events, newest first: ``(product pk, event type)``.

    The customer pk is a bound value (not a sub-select on the external id): PostgreSQL then plans a
    top-N walk of the ``(customer, -timestamp)`` index for customers with many events, where the
    generic plan of a sub-select sorted all of them (and broke timestamp ties differently).
    """
    sql = (
        "SELECT product_id, event_type FROM activity_event WHERE customer_id = %s AND product_id IS NOT NULL "
        'AND store_id = %s ORDER BY "timestamp" DESC LIMIT %s'
    )
    with connection.cursor() as cur:
        cur.execute(sql, [customer_id, store_id, limit])
        return [(int(pk), event_type) for pk, event_type in cur.fetchall()]
