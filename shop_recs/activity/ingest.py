"""The low-level write path for events, shared by the batch API and the importers.

Everything here takes an explicit ``store_id`` and works whether or not a store scope is active
(management commands and Celery tasks often run outside one). Callers are trusted: rows must be
validated already (``shop_recs.activity.services.clean_event_rows`` does that for the API).

Interface (stable; the importer in ``shop_recs.imports`` depends on it)::

    EVENT_COLUMNS = ("customer_id", "session_id", "event_type", "product_id", "value", "quantity",
                     "order_id", "query", "timestamp", "context")

    write_events(store_id, rows) -> int
        ``rows`` are tuples in ``EVENT_COLUMNS`` order:
          customer_id  int | None      Customer pk (see ensure_customers)
          session_id   str | None      None is stored as ""
          event_type   str             one of EventType values
          product_id   int | None      Product pk (see product_ids_by_sku)
          value        float | None
          quantity     int | None
          order_id     str | None      None is stored as ""
          query        str | None      None is stored as ""
          timestamp    datetime        timezone-aware
          context      dict | None     stored as JSON (jsonb)
        PostgreSQL: one binary ``COPY activity_event ... FROM STDIN`` (psycopg 3); SQLite: a prepared
        ``executemany``; other databases: ``bulk_create``. The caller owns the transaction (wrap it in
        ``transaction.atomic()`` when the write must be all-or-nothing together with other writes).
        Returns the number of rows written.
        ``activity_event`` has no database FK constraints (speed; see the Event model), so pass only
        ids obtained from ensure_customers / product_ids_by_sku for the same store_id.

    ensure_customers(store_id, external_ids) -> dict[str, int]
        Creates the unknown customers (``INSERT ... ON CONFLICT DO NOTHING`` semantics, so two
        concurrent batches naming the same new customer do not fail) and returns external_id -> pk
        for every id given.

    product_ids_by_sku(store_id, skus) -> dict[str, int]
        sku -> pk for the skus that exist in the store (inactive products included: events about
        a deactivated product are still history). Unknown skus are simply absent from the result.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime

from django.db import connection
from django.utils import timezone

from shop_recs.activity import changes
from shop_recs.activity import sql as activity_sql
from shop_recs.activity.models import Customer, Event
from shop_recs.stores.scoping import store_scope

__all__ = ["EVENT_COLUMNS", "write_events", "ensure_customers", "ensure_customers_counting", "product_ids_by_sku"]

EVENT_COLUMNS = (
    "customer_id",
    "session_id",
    "event_type",
    "product_id",
    "value",
    "quantity",
    "order_id",
    "query",
    "timestamp",
    "context",
)

_BULK_CREATE_BATCH = 2_000


def write_events(store_id: int, rows: Iterable[tuple]) -> int:
    """Append events to the store's history. See the module docstring for the row format.

    Then announces them (``changes.events_written``): serving's in-process caches append a small
    write's events on PostgreSQL (write-through), or drop the customers; at once in this process,
    and on commit in the others.
    """
    now = timezone.now()
    customers: set[int] = set()
    # The product events of known customers, kept only while a write-through message could carry them
    # (beyond that the customers are named instead): a 10,000-row batch pays one length check per row.
    written: list[changes.WrittenEvent] = []
    cap = changes.MAX_EVENTS_PER_MESSAGE
    kind_code, other, epoch_us = changes.KIND_CODE.get, changes.OTHER_KIND, changes.epoch_us

    def noting_customers(rows: Iterable[tuple]) -> Iterator[tuple]:
        for row in rows:
            cust = row[0]
            customers.add(cust)
            if cust is not None and row[3] is not None and len(written) <= cap:
                written.append((cust, row[3], kind_code(row[2], other), epoch_us(row[8])))
            yield row

    xid = None
    if connection.vendor == "postgresql":
        count = activity_sql.copy_events(store_id, noting_customers(rows), now)
        if written and len(written) <= cap and connection.in_atomic_block:
            # Outside a transaction the COPY committed on its own: no id to tell its rows by.
            xid = activity_sql.current_xid()
    elif connection.vendor == "sqlite":
        count = activity_sql.insert_events_sqlite(store_id, noting_customers(rows), now)
    else:
        count = _bulk_create_events(store_id, noting_customers(rows), now)
    changes.events_written(store_id, xid, written, customers)
    return count


def _bulk_create_events(store_id: int, rows: Iterable[tuple], now: datetime) -> int:
    """Any other database Django supports: portable, slower."""
    objs = [
        Event(
            store_id=store_id,
            customer_id=cust,
            session_id=sess or "",
            event_type=etype,
            product_id=prod,
            value=value,
            quantity=qty,
            order_id=order or "",
            query=query or "",
            timestamp=ts,
            context=ctx,
            received_at=now,
        )
        for cust, sess, etype, prod, value, qty, order, query, ts, ctx in rows
    ]
    # The store is explicit here and importers may run outside a scope: enter the store's own.
    with store_scope(store_id):
        Event.objects.bulk_create(objs, batch_size=_BULK_CREATE_BATCH)
    return len(objs)


def ensure_customers(store_id: int, external_ids: Iterable[str]) -> dict[str, int]:
    """Return external_id -> pk for all ids, creating the customers not seen before."""
    return ensure_customers_counting(store_id, external_ids)[0]


def ensure_customers_counting(store_id: int, external_ids: Iterable[str]) -> tuple[dict[str, int], int]:
    """``ensure_customers`` plus how many customers this call created (for import reports)."""
    wanted = list(dict.fromkeys(external_ids))
    if not wanted:
        return {}, 0
    found = activity_sql.customer_ids(store_id, wanted)
    # Sorted: two concurrent batches inserting overlapping new customers then take the unique-index
    # locks in the same order, so one waits for the other instead of deadlocking.
    missing = sorted(ext for ext in wanted if ext not in found)
    if not missing:
        return found, 0
    now = timezone.now()
    if connection.vendor == "postgresql":
        inserted = activity_sql.insert_customers_pg(store_id, missing, now)
        created = len(inserted)
        found.update(inserted)
    else:
        with store_scope(store_id):
            Customer.objects.bulk_create(
                [Customer(store_id=store_id, external_id=ext, created_at=now) for ext in missing],
                batch_size=_BULK_CREATE_BATCH,
                ignore_conflicts=True,
            )
        created = len(missing)  # SQLite serialises writers: nobody else can have created them meanwhile
    # ON CONFLICT DO NOTHING: rows a concurrent request created meanwhile are not returned; re-read.
    still = [ext for ext in missing if ext not in found]
    if still:
        found.update(activity_sql.customer_ids(store_id, still))
    return found, created


def product_ids_by_sku(store_id: int, skus: Iterable[str]) -> dict[str, int]:
    """sku -> pk for the given skus that exist in the store."""
    wanted = list(dict.fromkeys(skus))
    if not wanted:
        return {}
    return activity_sql.product_ids_by_sku(store_id, wanted)
