"""Platform raw SQL: generic write infrastructure (allow-listed in ``tests/test_raw_sql.py``).

These functions take a table (or a full INSERT statement built from constants by the caller, see
``shop_recs.platform.logbuffer.LogTable``), never user input as SQL. They write rows the caller
built; a store-owned log row carries its own ``store_id`` column value, so no store is implied here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connection


def insert_rows(insert_sql: str, params: Sequence[Any]) -> None:
    """Run one ``INSERT INTO <table> (...) VALUES (...)[, (...)]`` built by the caller from constants."""
    with connection.cursor() as cur:
        cur.execute(insert_sql, params)


def copy_rows(target: str, rows: Iterable[Sequence[Any]]) -> None:
    """PostgreSQL: ``COPY <target> FROM STDIN`` (``target`` is ``table (col, ...)`` from constants)."""
    with connection.cursor() as cur, cur.copy(f"COPY {target} FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def skip_wal_wait_on_this_connection() -> None:
    """PostgreSQL: commits on this thread's connection stop waiting for the WAL flush
    (``SET synchronous_commit = off``). Only for a connection that writes nothing but log rows."""
    with connection.cursor() as cur:
        cur.execute("SET synchronous_commit = off")
