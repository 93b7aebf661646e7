"""Serving's raw SQL (allow-listed in ``tests/test_raw_sql.py``): the hot path's reads in one round trip.

Every function takes the store explicitly (``store_id``) and filters by it in every WHERE clause:
raw SQL bypasses django-scopes. Only quoted identifiers are interpolated into the SQL; every value is
a parameter. Raw SQL, not the ORM, because Django refuses LIMIT inside a compound query on SQLite and
because compiling the ORM query cost more than running it on this path.
"""

from __future__ import annotations

from django.db import connection

from shop_recs.activity.models import Customer, Event
from shop_recs.serving.models import RecommendationList
from shop_recs.training.models import ModelVersion


def _qn(name: str) -> str:
    return connection.ops.quote_name(name)


def recent_activity_rows(store_id: int, customer_id: int, recent: int, max_purchased: int) -> list[tuple]:
    """``(product_id, event_type, 0)`` for the latest ``recent`` product events, then
    ``(product_id, 'purchase', 1)`` for up to ``max_purchased`` distinct purchased products."""
    table, ts = _qn(Event._meta.db_table), _qn("timestamp")
    sql = (
        f"SELECT product_id, event_type, 0 FROM (SELECT product_id, event_type FROM {table} "  # noqa: S608
        f"WHERE customer_id = %s AND store_id = %s AND product_id IS NOT NULL ORDER BY {ts} DESC LIMIT %s) recent "
        f"UNION ALL SELECT product_id, 'purchase', 1 FROM (SELECT DISTINCT product_id FROM {table} "
        f"WHERE customer_id = %s AND store_id = %s AND event_type = 'purchase' AND product_id IS NOT NULL "
        f"LIMIT %s) bought"
    )
    with connection.cursor() as cur:
        cur.execute(sql, [customer_id, store_id, recent, customer_id, store_id, max_purchased])
        return cur.fetchall()


def customer_activity_rows(store_id: int, external_id: str, recent: int, max_purchased: int) -> list[tuple]:
    """One round trip for a customer recommendation: rows ``(part, value, text)`` where part 3 is the
    store's active version id, 2 the customer ``(pk, country)``, 0 a recent product event and 1 a
    purchased product. Same rows as three ORM queries plus the recent-activity query."""
    events, customers, versions = (
        _qn(Event._meta.db_table),
        _qn(Customer._meta.db_table),
        _qn(ModelVersion._meta.db_table),
    )
    ts = _qn("timestamp")
    # CAST-free NULLs keep the UNION's column types aligned on PostgreSQL and SQLite alike.
    sql = (
        f"WITH c AS (SELECT id, country FROM {customers} WHERE store_id = %s AND external_id = %s), "  # noqa: S608
        # "customer_id = (SELECT id FROM c)" rather than a JOIN: with the join SQLite walked the whole
        # store through (store, timestamp) — 30-70 ms on the demo store — instead of the customer's
        # (customer, -timestamp) index (0.15 ms). PostgreSQL plans both forms on that index.
        f"recent AS (SELECT e.product_id, e.event_type FROM {events} e WHERE e.customer_id = (SELECT id FROM c) "
        f"AND e.store_id = %s AND e.product_id IS NOT NULL ORDER BY e.{ts} DESC LIMIT %s), "
        f"bought AS (SELECT DISTINCT e.product_id FROM {events} e WHERE e.customer_id = (SELECT id FROM c) "
        f"AND e.store_id = %s AND e.event_type = 'purchase' AND e.product_id IS NOT NULL LIMIT %s) "
        f"SELECT 3, id, NULL FROM (SELECT id FROM {versions} WHERE store_id = %s AND is_active LIMIT 1) v "
        f"UNION ALL SELECT 2, id, country FROM c "
        f"UNION ALL SELECT 0, product_id, event_type FROM recent "
        f"UNION ALL SELECT 1, product_id, 'purchase' FROM bought"
    )
    params = [store_id, external_id, store_id, recent, store_id, max_purchased, store_id]
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def customer_activity_rows_pg(store_id: int, external_id: str, recent: int, max_purchased: int) -> list[tuple]:
    """:func:`customer_activity_rows` on PostgreSQL, plus what write-through needs (``live_activity``):
    rows ``(part, value, text, microseconds)`` with each recent event's time (part 0) and, part 4, the
    read's snapshot (``pg_current_snapshot()``, the statement's own), in the same round trip."""
    events, customers, versions = (
        _qn(Event._meta.db_table),
        _qn(Customer._meta.db_table),
        _qn(ModelVersion._meta.db_table),
    )
    ts = _qn("timestamp")
    sql = (
        f"WITH c AS (SELECT id, country FROM {customers} WHERE store_id = %s AND external_id = %s), "  # noqa: S608
        f"recent AS (SELECT e.product_id, e.event_type, e.{ts} AS ts FROM {events} e "
        f"WHERE e.customer_id = (SELECT id FROM c) "
        f"AND e.store_id = %s AND e.product_id IS NOT NULL ORDER BY e.{ts} DESC LIMIT %s), "
        f"bought AS (SELECT DISTINCT e.product_id FROM {events} e WHERE e.customer_id = (SELECT id FROM c) "
        f"AND e.store_id = %s AND e.event_type = 'purchase' AND e.product_id IS NOT NULL LIMIT %s) "
        f"SELECT 3, id, NULL::text, NULL::bigint FROM (SELECT id FROM {versions} WHERE store_id = %s AND is_active "
        f"LIMIT 1) v "
        f"UNION ALL SELECT 2, id, country, NULL FROM c "
        f"UNION ALL SELECT 0, product_id, event_type, (extract(epoch FROM ts) * 1000000)::bigint FROM recent "
        f"UNION ALL SELECT 1, product_id, 'purchase', NULL FROM bought "
        f"UNION ALL SELECT 4, NULL, pg_current_snapshot()::text, NULL"
    )
    params = [store_id, external_id, store_id, recent, store_id, max_purchased, store_id]
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def active_version_id(store_id: int) -> int:
    """The store's active ModelVersion id (0: none): one indexed lookup."""
    table = _qn(ModelVersion._meta.db_table)
    with connection.cursor() as cur:
        cur.execute(f"SELECT id FROM {table} WHERE store_id = %s AND is_active LIMIT 1", [store_id])  # noqa: S608
        row = cur.fetchone()
    return int(row[0]) if row else 0


def insert_list_sql() -> str:
    """The served-list log's INSERT (``RecommendationList`` rows; the log buffer runs it, or COPYs the
    same columns). Each row carries its ``store_id`` as the first value."""
    table = _qn(RecommendationList._meta.db_table)
    cast = "::jsonb" if connection.vendor == "postgresql" else ""
    return (
        f"INSERT INTO {table} (store_id, list_id, endpoint, placement, customer_id, model_version_id, "  # noqa: S608
        f"algorithm, variant, anchor_product_id, product_ids, created_at) "
        f"VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s{cast}, %s)"
    )
