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
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)

CHANNEL = "shop_recs:activity-changed"
#: Above this many customers one message says "the whole store" instead of naming them.
MAX_NAMED_CUSTOMERS = 2_000
#: After a failed PUBLISH, skip publishing this long (an outage must not slow every ingestion call).
PAUSE_AFTER_FAILURE = 5.0
_LOG_EVERY = 30.0

Listener = Callable[[int, frozenset[int] | None], None]
_listeners: list[Listener] = []
_client: Any = None
_client_lock = threading.Lock()
_paused_until = 0.0
_last_logged = 0.0


def add_listener(listener: Listener) -> None:
    """Call ``listener(store_id, customer_ids or None for all)`` on every change made in this process."""
    if listener not in _listeners:
        _listeners.append(listener)


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
