"""Customers' latest activity, kept in process for the serving hot path and fed by Redis pub/sub.

A recommendation request needs the customer (pk, country), their latest events and their purchases
(``realtime.customer_activity``: one database round trip, ~0.45 ms of client plus server CPU on
this class of machine, more than the rest of the request). This module keeps what that query
returned per ``(store, external id)`` and keeps it current as the customer's activity changes:

* **new events are written through** (``changes.events_written``; PostgreSQL): the message carries the
  events and every process appends them to the cached entry (``ServingCustomer.with_events``: a new
  entry, the events as numpy records, the latest ``RECENT_EVENTS`` by time, purchases added), so the
  next recommendation needs no database read. The message names its transaction; an entry whose read
  already saw it (its ``pg_current_snapshot()``) or that applied the same message appends nothing, so
  no event counts twice, whatever arrives first;
* other changes (a customer's country, deletions, merges, a write of more than
  ``changes.MAX_EVENTS_PER_MESSAGE`` events, SQLite) drop the entry: at once in the writing process
  (``shop_recs.activity.changes`` calls :meth:`_Feed.drop` synchronously), in the others on their
  ``PUBLISH`` on ``changes.CHANNEL`` after commit. A write inside a transaction drops its own
  process's entry at once too (it may read its own uncommitted rows) and is written through elsewhere.

Each request first applies every message already received (a non-blocking read of the subscription
socket), so a change committed and published before this request arrived is applied before the
request reads the cache: an event posted to one worker changes the next recommendation served by any
worker.

When the cache may answer (otherwise the request reads the database, as without the cache):

* ``SERVING_ACTIVITY_CACHE`` is on (default: when ``REDIS_URL`` is set);
* the subscription is healthy: subscribed, and a PING answered within :data:`HEALTHY_SECONDS`
  (a keep-alive thread pings every second). A lost subscription empties the cache (messages may
  have been missed) and requests read the database until it is back;
* the entry is younger than ``SERVING_ACTIVITY_TTL`` seconds (default 300), which bounds staleness
  in the one case the rules above cannot see: a writer that could not reach Redis while this
  process could;
* the read was made outside a transaction (it cannot have seen uncommitted rows) and no change for
  that customer arrived while it was being read.

Unknown customers (no row yet) are not cached: the write that creates them names only the new pk.

While the database is unreachable (``snapshot.DB_UNREACHABLE`` on the read), a cached entry answers
whatever its age (no write can happen meanwhile); a customer without one is served as a customer
without history (trending lists). Both are counted in :func:`stats` and logged (docs/serving.md).
"""

from __future__ import annotations

import json
import logging
import os
import select
import threading
import time
from typing import Any

from django.conf import settings
from django.db import connection

from shop_recs.activity import changes
from shop_recs.platform import metrics
from shop_recs.platform.cache import register_process_cache
from shop_recs.serving import realtime
from shop_recs.serving.runtime import note_active_version
from shop_recs.serving.snapshot import DB_UNREACHABLE

logger = logging.getLogger(__name__)

#: The subscription counts as healthy while its last PONG (or subscribe confirmation) is this recent.
HEALTHY_SECONDS = 3.0
#: Keep-alive thread: PING and drain this often.
PING_EVERY = 1.0
#: Seconds between reconnection attempts after the subscription is lost.
RECONNECT_EVERY = 1.0


def enabled() -> bool:
    return bool(settings.SERVING_ACTIVITY_CACHE) and bool(settings.REDIS_URL)


def entry_ttl() -> float:
    return float(settings.SERVING_ACTIVITY_TTL)


def max_entries() -> int:
    return int(settings.SERVING_ACTIVITY_MAX_ENTRIES)


class _Feed:
    """The per-process cache and its subscription (state is reset in a forked child)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.pid = os.getpid()
        self.entries: dict[tuple[int, str], tuple[float, realtime.ServingCustomer]] = {}
        self.external_of: dict[tuple[int, int], str] = {}
        self.pubsub: Any = None
        self.last_pong = 0.0
        self.next_connect = 0.0
        self.thread: threading.Thread | None = None
        #: While a database read is in flight: the (store, pk) / (store, None) changes seen meanwhile.
        self.changed_during_read: set[tuple[int, int | None]] | None = None
        self.hits = self.misses = 0
        #: Entries updated by write-through instead of dropped.
        self.appended = 0
        #: Requests answered while the database was unreachable: from a cached entry / as no history.
        self.outage_hits = self.outage_anonymous = 0
        self.subscribe_failing = False

    # --- cache ---------------------------------------------------------------------------------

    def drop(self, store_id: int, customer_ids: frozenset[int] | None) -> None:
        with self.lock:
            if self.changed_during_read is not None:
                if customer_ids is None:
                    self.changed_during_read.add((store_id, None))
                else:
                    self.changed_during_read.update((store_id, c) for c in customer_ids)
            if customer_ids is None:
                for key in [k for k in self.entries if k[0] == store_id]:
                    del self.entries[key]
                for key in [k for k in self.external_of if k[0] == store_id]:
                    del self.external_of[key]
                return
            for pk in customer_ids:
                external_id = self.external_of.pop((store_id, pk), None)
                if external_id is not None:
                    self.entries.pop((store_id, external_id), None)

    def append(self, store_id: int, message_id: str, xid: int, events: list[changes.WrittenEvent]) -> None:
        """Write-through: a committed write's product events join the cached entries of their customers
        (``ServingCustomer.with_events``: nothing when the entry's read already saw the transaction or
        applied this message; a drop when it cannot tell exactly). Customers not cached here: nothing."""
        per_customer: dict[int, list[tuple[int, int, int]]] = {}
        for customer, product, code, us in events:
            per_customer.setdefault(customer, []).append((product, code, us))
        with self.lock:
            if self.changed_during_read is not None:
                self.changed_during_read.update((store_id, c) for c in per_customer)
            for pk, mine in per_customer.items():
                external_id = self.external_of.get((store_id, pk))
                if external_id is None:
                    continue
                key = (store_id, external_id)
                hit = self.entries.get(key)
                if hit is None:
                    continue
                updated = hit[1].with_events(message_id, xid, mine)
                if updated is None:
                    del self.entries[key]
                    del self.external_of[(store_id, pk)]
                elif updated is not hit[1]:
                    self.entries[key] = (hit[0], updated)
                    self.appended += 1

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.external_of.clear()

    def store(self, store_id: int, external_id: str, customer: realtime.ServingCustomer) -> None:
        with self.lock:
            if len(self.entries) >= max_entries():
                # Evict the oldest tenth (dicts keep insertion order).
                for key in list(self.entries)[: max(1, len(self.entries) // 10)]:
                    _, old = self.entries.pop(key)
                    self.external_of.pop((key[0], old.pk), None)
            self.entries[(store_id, external_id)] = (time.monotonic(), customer)
            self.external_of[(store_id, customer.pk)] = external_id

    # --- subscription --------------------------------------------------------------------------

    def healthy(self) -> bool:
        """Apply pending messages; ``True`` when the cache may answer (see the module doc)."""
        if self.pid != os.getpid():
            self._after_fork()
        if self.pubsub is None:
            # The first subscription is made here; after a loss the keep-alive thread reconnects, so
            # no request waits on a connection attempt to an unreachable Redis.
            if self.thread is not None and self.thread.is_alive():
                return False
            if not self._connect():
                return False
        self.drain()
        return self.pubsub is not None and time.monotonic() - self.last_pong < HEALTHY_SECONDS

    def drain(self) -> None:
        """Apply every message already received, without waiting."""
        pubsub = self.pubsub
        if pubsub is None or not _socket_has_data(pubsub):
            return
        with self.lock:
            pubsub = self.pubsub
            if pubsub is None:
                return
            try:
                while (message := pubsub.get_message(timeout=0.0)) is not None:
                    self._apply(message)
            except Exception as exc:  # noqa: BLE001 - any failure means: stop trusting the cache
                self._lost(exc)

    def _apply(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind in ("pong", "subscribe"):
            self.last_pong = time.monotonic()
            return
        if kind != "message":
            return
        try:
            data = json.loads(message["data"])
            store_id = int(data["store"])
            if "events" in data:
                events = [(int(c), int(p), int(k), int(us)) for c, p, k, us in data["events"]]
                if data.get("db") == changes.database_id():
                    self.append(store_id, str(data["id"]), int(data["xid"]), events)
                else:  # another database's write (a shared Redis): its ids mean nothing here, drop them
                    self.drop(store_id, frozenset(e[0] for e in events))
                return
            ids = None if data.get("all") else frozenset(int(c) for c in data["customers"])
        except (ValueError, KeyError, TypeError) as exc:
            logger.error("ignoring a malformed activity change message %r (%s)", message.get("data"), exc)
            return
        self.drop(store_id, ids)

    def _connect(self) -> bool:
        now = time.monotonic()
        if now < self.next_connect:
            return False
        with self.lock:
            if self.pubsub is not None:
                return True
            self.next_connect = now + RECONNECT_EVERY
            try:
                pubsub = changes.redis_client().pubsub()
                pubsub.subscribe(changes.CHANNEL)
            except Exception as exc:  # noqa: BLE001
                if not self.subscribe_failing:  # once per outage, not every retry
                    logger.warning("activity cache off: cannot subscribe to Redis (%s: %s)", type(exc).__name__, exc)
                self.subscribe_failing = True
                self._ensure_keepalive()  # it retries from now on, off the request path
                return False
            # Messages published while we were not subscribed are lost: start empty.
            self.clear()
            self.subscribe_failing = False
            self.pubsub, self.last_pong = pubsub, 0.0
        self._ensure_keepalive()
        return True

    def _lost(self, exc: BaseException) -> None:
        logger.warning("activity cache off: Redis subscription lost (%s: %s)", type(exc).__name__, exc)
        with self.lock:
            pubsub, self.pubsub = self.pubsub, None
            self.last_pong = 0.0
            self.next_connect = time.monotonic() + RECONNECT_EVERY
            self.clear()
        try:
            if pubsub is not None:
                pubsub.close()
        except Exception:  # noqa: BLE001, S110 - the connection is already broken
            pass

    def _after_fork(self) -> None:
        # The parent's socket and thread are not ours: start over (without closing its socket).
        self.__init__()  # type: ignore[misc]

    def _ensure_keepalive(self) -> None:
        if self.thread is not None and self.thread.is_alive():
            return
        self.thread = threading.Thread(target=self._keepalive, name="shop_recs-activity-feed", daemon=True)
        self.thread.start()

    def _keepalive(self) -> None:
        me = os.getpid()
        while os.getpid() == me:
            time.sleep(PING_EVERY)
            try:
                if self.pubsub is None:
                    self._connect()
                    continue
                with self.lock:
                    if self.pubsub is None:
                        continue
                    try:
                        self.pubsub.ping()
                    except Exception as exc:  # noqa: BLE001
                        self._lost(exc)
                        continue
                    self.drain()
            except Exception:  # noqa: BLE001 - this thread must outlive any surprise; requests fall back meanwhile
                logger.exception("activity cache keep-alive failed")


_poller: tuple[Any, Any] | None = None  # (socket, select.poll registered on it)


def _socket_has_data(pubsub: Any) -> bool:
    """Whether the subscription socket has bytes to read (or was closed), asked of the kernel directly.

    Every drain reads until redis-py's parser buffer is empty, so between two drains new messages can
    only be in the socket: a zero-timeout ``poll`` (~2 µs) tells whether a ``get_message`` loop
    (~30 µs even when there is nothing) is needed. (Not ``recv(MSG_PEEK | MSG_DONTWAIT)``: redis-py
    gives the socket a timeout, and Python then waits up to that timeout before such a recv.)
    Without a socket to look at, assume there is data.
    """
    global _poller
    sock = getattr(getattr(pubsub, "connection", None), "_sock", None)
    if sock is None:
        return True
    if _poller is None or _poller[0] is not sock:
        poller = select.poll()
        poller.register(sock, select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP)
        _poller = (sock, poller)
    try:
        return bool(_poller[1].poll(0))
    except (OSError, RuntimeError):  # RuntimeError: the keep-alive thread is polling at this moment
        return True


_feed = _Feed()
changes.add_listener(_feed.drop)
changes.add_event_listener(lambda store_id, message_id, xid, events: _feed.append(store_id, message_id, xid, events))


def serving_customer(store_id: int, external_id: str) -> realtime.ServingCustomer | None:
    """The customer with their latest activity for serving (``None``: no such customer).

    From the in-process cache when it may answer (module doc), else one database round trip
    (``realtime.customer_activity``), whose result is cached when it is safe to. The returned object
    is shared with later requests: callers must not modify it.
    """
    try:
        return _serving_customer(store_id, external_id)
    except DB_UNREACHABLE:
        return _outage_customer(store_id, external_id)


def _outage_customer(store_id: int, external_id: str) -> realtime.ServingCustomer | None:
    """While the database is unreachable: the cached entry, whatever its age (nothing can have been
    written meanwhile), else ``None``: the customer is served like one without history (trending),
    which beats an error page. Both are counted (:func:`stats`) and logged."""
    hit = _feed.entries.get((store_id, external_id))
    with _feed.lock:
        if hit is not None:
            _feed.outage_hits += 1
        else:
            _feed.outage_anonymous += 1
    logger.warning(
        "database unreachable: customer %r of store %s served from %s",
        external_id,
        store_id,
        "the cached activity" if hit is not None else "no history (trending)",
    )
    return hit[1] if hit is not None else None


def _serving_customer(store_id: int, external_id: str) -> realtime.ServingCustomer | None:
    if not enabled() or not _feed.healthy():
        customer, active = realtime.customer_activity(store_id, external_id)
        _note_active(store_id, active)
        return customer
    hit = _feed.entries.get((store_id, external_id))
    if hit is not None and time.monotonic() - hit[0] < entry_ttl():
        _feed.hits += 1
        metrics.cache_lookup("live_activity", True)
        return hit[1]
    _feed.misses += 1
    metrics.cache_lookup("live_activity", False)
    with _feed.lock:
        _feed.changed_during_read = set()
    try:
        customer, active = realtime.customer_activity(store_id, external_id)
        _feed.drain()
    finally:
        with _feed.lock:
            changed, _feed.changed_during_read = _feed.changed_during_read or set(), None
    _note_active(store_id, active)
    if (
        customer is not None
        and not connection.in_atomic_block
        and _feed.pubsub is not None
        and (store_id, None) not in changed
        and (store_id, customer.pk) not in changed
    ):
        _feed.store(store_id, external_id, customer)
    return customer


def _note_active(store_id: int, active: int) -> None:
    note_active_version(store_id, active)


def clear(store_id: int | None = None) -> None:
    """Empty this process's cache (one store's entries, or all of them)."""
    if store_id is None:
        _feed.clear()
    else:
        _feed.drop(int(store_id), None)


register_process_cache("serving.live_activity", clear)


def stats() -> dict[str, Any]:
    """Entries, hits and misses of this process (for the benchmark and debugging)."""
    return {
        "entries": len(_feed.entries),
        "hits": _feed.hits,
        "misses": _feed.misses,
        "appended": _feed.appended,
        "healthy": _feed.healthy(),
        "outage_hits": _feed.outage_hits,
        "outage_anonymous": _feed.outage_anonymous,
    }
