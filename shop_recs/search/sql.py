"""Search's raw SQL (allow-listed in ``tests/test_raw_sql.py``): the query log's INSERT."""

from __future__ import annotations

from django.db import connection

from shop_recs.search.models import SearchQuery


def insert_query_sql() -> str:
    """The search query log's INSERT (``SearchQuery`` rows; the log buffer runs it, or COPYs the same
    columns). Raw SQL: the ORM's ``create`` cost more than the round trip on the search hot path, and a
    buffered row has no model instance anyway (SearchQuery has no signal receivers to miss). Each
    row carries its ``store_id`` as the first value."""
    table = connection.ops.quote_name(SearchQuery._meta.db_table)
    return (
        f"INSERT INTO {table} (store_id, query, normalized_query, customer_id, session_id, n_results, "  # noqa: S608
        "corrected_query, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
    )
