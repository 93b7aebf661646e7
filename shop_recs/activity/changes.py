"""Announce that customers' activity changed, to this process at once and to the others via Redis.

Serving keeps each customer's latest events in process memory (``shop_recs.serving.live_activity``)
so a recommendation request needs no database round trip. Every write that changes what that cache
holds calls one of the functions here:

* :func:`customers_changed` — events written for these customers (``ingest.write_events``), a
  customer's country changed (customer upsert), a customer deleted;
* :func:`store_changed` — too many customers to name (a bulk import chunk), or deletions by a path
  that does not list them.

Two deliveries:

1. **This process, now**: the registered local listeners run synchronously (the serving cache drops
   the entries), so the next request in this process reads the database again.
2. **Other processes, on commit**: one ``PUBLISH`` on :data:`CHANNEL` after the transaction commits
   (``transaction.on_commit``; right away in autocommit). A rolled-back write announces nothing.
   Publishing never fails the write: with Redis unreachable the error is logged (at most every 30 s)
   and publishing pauses for :data:`PAUSE_AFTER_FAILURE` seconds; the subscribers, which lose the
   same Redis, stop trusting their caches (see ``live_activity``).

Message (JSON): ``{"store": 3, "customers": [17, 42]}`` or ``{"store": 3, "all": true}``.

**Write-through** (:func:`events_written`, from ``ingest.write_events`` and the lean event path): a write
of at most :data:`MAX_EVENTS_PER_MESSAGE` product events on PostgreSQL publishes the events themselves,
``{"store": 3, "db": "<database_id()>", "id": "<message id>", "xid": 1234, "events": [[customer, product,
type code, µs], ...]}``,
and every process *appends* them to the customers' cached activity instead of dropping it, so the next
recommendation needs no database read. ``xid`` is the writing transaction's id: a cached entry whose
read already saw that transaction (its snapshot) appends nothing, so a message that arrives after a
fresh read is not counted twice. Written inside a transaction, the writing process drops its entries at
once (it may read its own uncommitted rows) and publishes on commit; written by a committed statement
(autocommit), it appends locally at once and publishes.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from shop_recs.activity.models import EventType

logger = logging.getLogger(__name__)

CHANNEL = "shop_recs:activity-changed"
#: Above this many customers one message says "the whole store" instead of naming them.
MAX_NAMED_CUSTOMERS = 2_000
#: After a failed PUBLISH, skip publishing this long (an outage must not slow every ingestion call).
PAUSE_AFTER_FAILURE = 5.0
_LOG_EVERY = 30.0

#: Above this many product events a write is announced as "these customers changed" (the caches drop
#: them) instead of carrying the events: every process parses each message, and a bulk import is better
#: read back on demand than pushed to every worker.
MAX_EVENTS_PER_MESSAGE = 1_000

#: Event types as small codes, shared by the messages and serving's cached arrays. The last code stands
#: for any type this version does not know (rows stored before today's validation).
KINDS: tuple[str, ...] = (*EventType.values, "")
KIND_CODE: dict[str, int] = {kind: code for code, kind in enumerate(KINDS)}
OTHER_KIND = len(KINDS) - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def epoch_us(ts: datetime) -> int:
    """A timezone-aware datetime as whole microseconds since the epoch (exact, unlike ``timestamp()``)."""
    return (ts - _EPOCH) // _MICROSECOND


#: ``(customer pk, product pk, type code, microseconds)``
WrittenEvent = tuple[int, int, int, int]
Listener = Callable[[int, frozenset[int] | None], None]
EventListener = Callable[[int, str, int, list[WrittenEvent]], None]
_listeners: list[Listener] = []
_event_listeners: list[EventListener] = []
_message_ids = count()
_client: Any = None
_client_lock = threading.Lock()
_paused_until = 0.0
_last_logged = 0.0


def add_listener(listener: Listener) -> None:
    """Call ``listener(store_id, customer_ids or None for all)`` on every change made in this process."""
    if listener not in _listeners:
        _listeners.append(listener)


def database_id() -> str:
    """Which database a write-through message is about. Redis pub/sub channels ignore the Redis database
    number, so two deployments (or test runs) sharing a Redis server hear each other's messages: a
    process appends only events of its own database and merely drops the customers named by another's
    (always safe, as before write-through)."""
    db = connection.settings_dict
    return f"{db.get('HOST') or ''}:{db.get('PORT') or ''}/{db.get('NAME') or ''}"


def add_event_listener(listener: EventListener) -> None:
    """Call ``listener(store_id, message id, xid, events)`` on every committed write-through in this process."""
    if listener not in _event_listeners:
        _event_listeners.append(listener)


def events_written(
    store_id: int, xid: int | None, events: list[WrittenEvent], customer_ids: Iterable[int | None]
) -> None:
    """Announce a write of events (see the module doc). ``xid``: the writing transaction's id
    (PostgreSQL), ``None`` when unknown; ``events``: its product events of known customers, or fewer
    than were written (then pass ``xid=None``). Without an ``xid``, or above
    :data:`MAX_EVENTS_PER_MESSAGE`, it is :func:`customers_changed`."""
    if xid is None or not events or len(events) > MAX_EVENTS_PER_MESSAGE or not settings.REDIS_URL:
        customers_changed(store_id, customer_ids)
        return
    # Unique across processes: the pid tells processes apart, the counter messages of one process.
    message_id = f"{os.getpid()}.{next(_message_ids)}.{time.time_ns()}"
    # "customers" too: a process still running the code before write-through (a rolling deploy) reads
    # only that key, and drops them as it always did.
    message = {
        "store": store_id,
        "customers": sorted({e[0] for e in events}),
        "db": database_id(),
        "id": message_id,
        "xid": xid,
        "events": events,
    }
    payload = json.dumps(message, separators=(",", ":"))
    if connection.in_atomic_block:
        ids = frozenset(e[0] for e in events)
        for listener in _listeners:
            listener(store_id, ids)
        transaction.on_commit(lambda: publish(payload))
        return
    for event_listener in _event_listeners:
        event_listener(store_id, message_id, xid, events)
    publish(payload)


def customers_changed(store_id: int, customer_ids: Iterable[int | None]) -> None:
    ids = frozenset(int(c) for c in customer_ids if c is not None)
    if not ids:
        return
    if len(ids) > MAX_NAMED_CUSTOMERS:
        store_changed(store_id)
        return
    _announce(store_id, ids)


def store_changed(store_id: int) -> None:
    _announce(store_id, None)


def _announce(store_id: int, ids: frozenset[int] | None) -> None:
    for listener in _listeners:
        listener(store_id, ids)
    if not settings.REDIS_URL:
        return
    message = {"store": store_id, "all": True} if ids is None else {"store": store_id, "customers": sorted(ids)}
    payload = json.dumps(message, separators=(",", ":"))
    transaction.on_commit(lambda: publish(payload))


def redis_client() -> Any:
    """A Redis client for ``settings.REDIS_URL`` with short timeouts (shared by this process)."""
    global _client
    if _client is None:
        # Only processes configured with Redis load the client library.
        import redis

        with _client_lock:
            if _client is None:
                _client = redis.Redis.from_url(
                    settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5, health_check_interval=0
                )
    return _client


def publish(payload: str) -> bool:
    """PUBLISH one change message; ``False`` (logged) when Redis is unreachable or paused."""
    global _paused_until, _last_logged
    now = time.monotonic()
    if now < _paused_until:
        return False
    try:
        redis_client().publish(CHANNEL, payload)
    except Exception as exc:  # noqa: BLE001 - redis-py raises ConnectionError, TimeoutError, ...
        _paused_until = now + PAUSE_AFTER_FAILURE
        if now - _last_logged > _LOG_EVERY:
            _last_logged = now
            logger.warning(
                "could not publish an activity change (%s: %s); other processes' caches "
                "rely on their own Redis checks until it is back",
                type(exc).__name__,
                exc,
            )
        return False
    return True


def _on_customer_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    customers_changed(instance.store_id, [instance.pk])


def connect_signals() -> None:
    """A customer deleted through the ORM (admin, privacy erasure; their events go with them).

    No receiver on ``Event`` on purpose: one would stop Django from deleting a customer's or store's
    events in bulk (the collector fetches every instance when a model has delete receivers). Code
    that deletes events directly calls :func:`customers_changed` / :func:`store_changed` itself.
    """
    # Called from ActivityConfig.ready(): the models exist only once the app registry is loaded.
    from django.db.models.signals import post_delete

    from shop_recs.activity.models import Customer

    post_delete.connect(_on_customer_deleted, sender=Customer, dispatch_uid="activity-changes-customer")
