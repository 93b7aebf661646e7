"""Profiles' raw SQL (allow-listed in ``tests/test_raw_sql.py``): PostgreSQL ``COPY`` out and in.

At 200k customers and 5M events, reading the events through ``values_list`` took 85 s and saving
the profiles by ``bulk_create(update_conflicts=True)`` 53 s (docs/benchmarks_profiles.md). Both
are row-at-a-time Python work; ``COPY`` moves the same rows in bulk. Every function takes the store
id explicitly: raw SQL bypasses django-scopes.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from datetime import UTC

import numpy as np
import pandas as pd
from django.db import connection, transaction
from django.db.models import Q
from django.db.models.functions import Extract
from psycopg import sql

from shop_recs.activity.models import Event

#: The columns of ``copy_profile_events`` in order (``epoch`` is seconds since 1970, UTC).
EVENT_COLUMNS = ("id", "customer_id", "event_type", "product_id", "value", "quantity", "order_id", "epoch")


def copy_profile_events(store_id: int, readable: Q) -> pd.DataFrame:
    """The store's customer events that ``readable`` admits, read by ``COPY (SELECT …) TO STDOUT``.

    The ``WHERE`` clause is the ORM's own compilation of ``readable`` (the readers' filter in
    ``shop_recs.catalog.validation``), so this path can never admit a row the ORM path skips. Text
    format parsed by pandas' C reader: binary ``COPY`` with nullable and text columns would need a
    per-row Python decoder, which is the cost this replaces.
    """
    # all stores: the store is the explicit filter below (raw SQL runs outside django-scopes)
    queryset = (
        Event.objects.all()
        .filter(readable, store_id=store_id, customer__isnull=False)
        .annotate(epoch=Extract("timestamp", "epoch", tzinfo=UTC))
        .order_by()
        .values_list(*EVENT_COLUMNS)
    )
    query, params = queryset.query.sql_with_params()
    buf = io.BytesIO()
    connection.ensure_connection()
    with connection.connection.cursor() as cur, cur.copy(f"COPY ({query}) TO STDOUT", params) as copy:
        for chunk in copy:
            buf.write(chunk)
    buf.seek(0)
    if buf.getbuffer().nbytes == 0:
        return pd.DataFrame({name: [] for name in EVENT_COLUMNS})
    # QUOTE_NONE: COPY's text format escapes tabs and newlines itself and never quotes; a '"' in an
    # order id must stay a character. Its backslash escapes are undone below.
    frame = pd.read_csv(
        buf,
        sep="\t",
        header=None,
        names=list(EVENT_COLUMNS),
        na_values=["\\N"],
        keep_default_na=False,
        quoting=csv.QUOTE_NONE,
        dtype={
            "id": np.int64,
            "customer_id": np.int64,
            "event_type": str,
            "product_id": np.float64,  # nullable
            "value": np.float64,
            "quantity": np.float64,
            "order_id": object,
            "epoch": np.float64,
        },
    )
    escaped = frame["order_id"].str.contains("\\", regex=False, na=False)
    if escaped.any():
        frame.loc[escaped, "order_id"] = frame.loc[escaped, "order_id"].map(_unescape_copy_text)
    return frame


#: What PostgreSQL's text COPY writes for a backslash and the control characters it escapes.
_COPY_ESCAPES = {"\\": "\\", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_COPY_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


def _unescape_copy_text(value: str) -> str:
    return _COPY_ESCAPE.sub(lambda m: _COPY_ESCAPES.get(m.group(1), m.group(1)), value)


def copy_profiles_in(
    store_id: int,
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence],
    conflict: str,
    insert_only: Sequence[str] = (),
) -> int:
    """Upsert ``rows`` into ``table``: one ``COPY`` into a temporary staging table, then one
    ``INSERT … SELECT … ON CONFLICT (conflict) DO UPDATE`` of every column but the key, ``store_id``
    and ``insert_only`` (written on insert, kept on update).

    Runs in a transaction (the caller's, if any: profile runs save profiles, segments and their
    success in one), so the staging table lives until commit at most. Every row must carry
    ``store_id`` = ``store_id``; a row of another store raises before anything reaches ``table``.
    JSON columns take their values as JSON text.
    """
    if "store_id" not in columns:
        raise ValueError("the rows must carry store_id")
    store_pos = list(columns).index("store_id")
    stage = sql.Identifier(f"{table}_stage")
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c))
        for c in columns
        if c not in (conflict, "store_id", *insert_only)
    )
    n = 0
    with transaction.atomic(), connection.connection.cursor() as cur:
        cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(stage))
        # Column types copied from the table, constraints and the identity not: the stage holds no id.
        cur.execute(
            sql.SQL("CREATE TEMPORARY TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
                stage, cols, sql.Identifier(table)
            )
        )
        with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(stage, cols)) as copy:
            for row in rows:
                if row[store_pos] != store_id:
                    raise ValueError(f"row {n} belongs to store {row[store_pos]!r}, not {store_id}")
                copy.write_row(row)
                n += 1
        cur.execute(
            sql.SQL(
                "INSERT INTO {table} ({cols}) SELECT {cols} FROM {stage} "
                "ON CONFLICT ({conflict}) DO UPDATE SET {updates}"
            ).format(
                table=sql.Identifier(table), cols=cols, stage=stage, conflict=sql.Identifier(conflict), updates=updates
            )
        )
        cur.execute(sql.SQL("DROP TABLE {}").format(stage))
    return n


def copy_update_profiles(store_id: int, table: str, key: str, columns: Sequence[str], rows: Iterable[Sequence]) -> int:
    """Set ``columns`` of the store's rows of ``table`` from ``rows`` (``key`` first, then
    ``columns``): one ``COPY`` into a staging table and one ``UPDATE … FROM`` that rewrites only
    the rows whose values change. Segment memberships used an ``UPDATE … WHERE id IN (…)`` per
    5,000 rows and rewrote every profile twice per run. Returns the number of rows changed.
    """
    stage = sql.Identifier(f"{table}_update_stage")
    target = sql.Identifier(table)
    all_columns = [key, *columns]
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in all_columns)
    sets = sql.SQL(", ").join(sql.SQL("{0} = s.{0}").format(sql.Identifier(c)) for c in columns)
    changed = sql.SQL(" OR ").join(sql.SQL("t.{0} IS DISTINCT FROM s.{0}").format(sql.Identifier(c)) for c in columns)
    with transaction.atomic(), connection.connection.cursor() as cur:
        cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(stage))
        cur.execute(
            sql.SQL("CREATE TEMPORARY TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
                stage, cols, target
            )
        )
        with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(stage, cols)) as copy:
            for row in rows:
                copy.write_row(row)
        cur.execute(
            sql.SQL(
                "UPDATE {target} AS t SET {sets} FROM {stage} AS s "
                "WHERE t.{key} = s.{key} AND t.store_id = %s AND ({changed})"
            ).format(target=target, sets=sets, stage=stage, key=sql.Identifier(key), changed=changed),
            (store_id,),
        )
        n = cur.rowcount
        cur.execute(sql.SQL("DROP TABLE {}").format(stage))
    return n
