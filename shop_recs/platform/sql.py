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


def without_wal_wait(insert_sql: str) -> str:
    """Rewrite ``INSERT INTO t (...) VALUES (...) [RETURNING ...]`` so that, run as its own transaction
    on PostgreSQL, it commits with ``synchronous_commit = off`` — this statement only
    (``set_config(..., true)``). Log rows are then visible at once but a *server* crash can lose the
    last ~0.6 s of them; nothing can be corrupted."""
    head, rest = insert_sql.split(" VALUES ", 1)
    values, _, returning = rest.strip().partition(") RETURNING ")
    values = values.strip()
    values = values[1:-1] if values.endswith(")") else values[1:]
    tail = f" RETURNING {returning}" if returning else ""
    prefix = "WITH _async AS (SELECT set_config('synchronous_commit', 'off', true)) "
    return f"{prefix}{head} SELECT {values} FROM _async{tail}"  # noqa: S608 - rewrites our constant SQL; values stay parameters
