"""Training's raw SQL (allow-listed in ``tests/test_raw_sql.py``): reading a store's events by ``COPY``.

The store is an explicit argument and the only filter that matters: raw SQL bypasses django-scopes.
"""

from __future__ import annotations

import io
from datetime import datetime

from django.db import connection
from psycopg import sql

from shop_recs.activity.models import Event


def copy_events_out(store_id: int, since: datetime | None) -> io.BytesIO:
    """PostgreSQL only: ``COPY (SELECT customer, product, type, epoch seconds, value ...) TO STDOUT``
    of the store's customer-product events (since ``since``), as tab-separated text in a buffer."""
    where = [sql.SQL("store_id = {}").format(sql.Literal(int(store_id)))]
    where.append(sql.SQL("customer_id IS NOT NULL AND product_id IS NOT NULL"))
    if since is not None:
        where.append(sql.SQL('"timestamp" >= {}').format(sql.Literal(since)))
    query = sql.SQL(
        'COPY (SELECT customer_id, product_id, event_type, floor(extract(epoch FROM "timestamp"))::bigint, value '
        "FROM {} WHERE {}) TO STDOUT"
    ).format(sql.Identifier(Event._meta.db_table), sql.SQL(" AND ").join(where))
    buf = io.BytesIO()
    connection.ensure_connection()
    with connection.connection.cursor() as cur, cur.copy(query) as copy:
        for chunk in copy:
            buf.write(chunk)
    buf.seek(0)
    return buf
