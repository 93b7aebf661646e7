"""Forget a customer, delete bad events, merge two customers: one service for the API and the dashboard.

``activity`` owns ``Customer`` and ``Event``; the packages above it (serving, ads, search, analytics)
own other rows with a customer column and caches built from them. The layer contract forbids
importing them here, so each operation sends a signal and every package's receivers delete (or, for
a merge, move) what they own and add their row counts to the :class:`Report`. Everything runs in one
transaction: when any receiver fails, nothing is deleted and no audit row is written.

Each receiver adds a count for every table it handles, zeros included, so the audit row
(:class:`~shop_recs.activity.models.ErasureRecord`) names every table that was looked at and the
every-table test (``tests/activity/test_erasure_every_table.py``) can check that no table with a
customer column is left out.

What an erasure leaves behind (aggregates already published) is listed in ``docs/privacy.md``.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import models, transaction
from django.db.models import BooleanField, Case, CharField, Value, When
from django.db.models.functions import Cast
from django.dispatch import Signal

from shop_recs.activity import changes
from shop_recs.activity.models import Customer, ErasureRecord, Event
from shop_recs.api.models import IdempotencyRecord
from shop_recs.catalog.validation import readable_events_q
from shop_recs.stores.models import Store
from shop_recs.stores.scoping import store_scope

__all__ = [
    "Actor",
    "EventRow",
    "EraseError",
    "MergeResult",
    "Report",
    "customer_erasing",
    "customers_merging",
    "delete_events",
    "erase_customer",
    "events_deleting",
    "list_events",
    "merge_customers",
    "merge_endpoint",
    "preview_erasure",
]

#: Sent before the customer's own rows go. Receivers delete their rows of ``customer`` (and, where
#: they keep a session column, the anonymous rows of ``session_ids``), or only count them when
#: ``dry_run`` is true, and call ``report.add``. Keyword arguments: ``store``, ``customer``,
#: ``session_ids`` (frozenset of str), ``report``, ``dry_run``.
customer_erasing = Signal()

#: Sent before ``source`` (a duplicate customer, or ``None`` for an anonymous session only) is folded
#: into ``target``. Receivers move their rows of ``source`` and of the anonymous ``session_id`` to
#: ``target`` and call ``report.add`` with the rows moved. Keyword arguments: ``store``, ``target``,
#: ``source``, ``session_id``, ``report``.
customers_merging = Signal()

#: Sent before the events ``event_ids`` (all of ``customer``) are deleted; receivers drop what was
#: derived from exactly those events. Keyword arguments: ``store``, ``customer``, ``event_ids``
#: (frozenset of int), ``report``.
events_deleting = Signal()

logger = logging.getLogger(__name__)

#: At most this many events per "delete these events" call (the dashboard lists 50 at a time).
MAX_EVENT_IDS = 1000


class EraseError(ValueError):
    """A request this service refuses, with a message fit for the API and the dashboard."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Actor:
    """Who asked: a dashboard user or an API key (its id), recorded on the audit row."""

    via: str
    user: Any = None
    api_key_id: int | None = None


@dataclass
class Report:
    """Rows per table (``app_label.Model``), filled by this module and by the receivers."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, model: type[models.Model], n: int) -> None:
        label = model._meta.label
        self.counts[label] = self.counts.get(label, 0) + int(n)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class MergeResult:
    """``record`` is ``None`` when there was nothing to fold in (nothing changed, nothing recorded)."""

    record: ErasureRecord | None
    counts: dict[str, int]

    @property
    def merged(self) -> bool:
        return self.record is not None


@dataclass(frozen=True)
class EventRow:
    """One event as the pages that find bad events show it, whatever the row holds.

    A row stored before validation may hold a year-1 timestamp (PostgreSQL keeps it as 1 BC, which
    Python cannot read back) or a value no JSON can carry: ``timestamp`` is ``None`` unless the row
    is ``readable`` (``catalog.validation.readable_events_q``), ``timestamp_text`` is what the
    database prints, and a non-finite ``value`` is ``None``.
    """

    pk: int
    event_type: str
    sku: str | None
    title: str | None
    session_id: str
    value: float | None
    quantity: int | None
    order_id: str
    query: str
    readable: bool
    timestamp_text: str
    timestamp: Any = None


def list_events(
    customer: Customer,
    *,
    ids: Iterable[int] | None = None,
    unreadable_only: bool = False,
    before: int | None = None,
    limit: int = 100,
    events: models.QuerySet[Event] | None = None,
) -> list[EventRow]:
    """The customer's events, newest id first, read without loading what may break Python (above).

    Call inside the customer's store scope. ``unreadable_only``: just the rows every other page skips.
    ``events``: a queryset already narrowed by the API's list filters (``activity.filters``); the
    customer is still applied here, so a filter can narrow the rows but never widen them.
    """
    readable = Case(When(readable_events_q(), then=Value(True)), default=Value(False), output_field=BooleanField())
    base = Event.objects.all() if events is None else events
    qs = base.filter(customer=customer).annotate(
        is_readable=readable, ts_text=Cast("timestamp", output_field=CharField())
    )
    if ids is not None:
        qs = qs.filter(pk__in=list(ids))
    if unreadable_only:
        qs = qs.filter(is_readable=False)
    if before:
        qs = qs.filter(pk__lt=before)
    fields = ("pk", "event_type", "product__sku", "product__title", "session_id", "value", "quantity")
    rows = list(qs.order_by("-pk").values(*fields, "order_id", "query", "is_readable", "ts_text")[:limit])
    ok = [r["pk"] for r in rows if r["is_readable"]]
    stamps = dict(Event.objects.filter(pk__in=ok).values_list("pk", "timestamp")) if ok else {}
    return [
        EventRow(
            pk=r["pk"],
            event_type=r["event_type"],
            sku=r["product__sku"],
            title=r["product__title"],
            session_id=r["session_id"],
            value=r["value"] if r["value"] is None or math.isfinite(r["value"]) else None,
            quantity=r["quantity"],
            order_id=r["order_id"],
            query=r["query"],
            readable=bool(r["is_readable"]),
            timestamp_text=str(r["ts_text"]),
            timestamp=stamps.get(r["pk"]),
        )
        for r in rows
    ]


def merge_endpoint(external_id: str) -> str:
    """The ``Idempotency-Key`` endpoint name of merges into ``external_id``: the customer is part of
    the key's scope (one key and body for two customers are two requests), stored as a hash only,
    and an erasure deletes these records."""
    return "customers.merge:" + hashlib.sha256(external_id.encode()).hexdigest()[:40]


def _session_ids(customer: Customer) -> frozenset[str]:
    """The session ids the customer's events carry: their anonymous events under those are theirs too."""
    rows = Event.objects.filter(customer=customer).exclude(session_id="").values_list("session_id", flat=True)
    return frozenset(rows.distinct())


def _anonymous_events(session_ids: Iterable[str]) -> models.QuerySet:
    return Event.objects.filter(customer__isnull=True, session_id__in=list(session_ids))


def _record(store: Store, kind: str, actor: Actor, report: Report) -> ErasureRecord:
    return ErasureRecord.objects.create(
        store=store,
        kind=kind,
        via=actor.via,
        user=actor.user if getattr(actor.user, "pk", None) else None,
        api_key_id=actor.api_key_id,
        row_counts=dict(sorted(report.counts.items())),
    )


def _sweep_late_events(store_id: int, old_pk: int, target_pk: int | None) -> int:
    """After the commit: events written under ``old_pk`` by a batch that resolved the customer before
    the erasure or merge committed (ingestion reads customer ids without a lock, and events have no
    database foreign key) are deleted (erasure) or moved to ``target_pk`` (merge)."""
    with store_scope(store_id):
        rows = Event.objects.filter(customer_id=old_pk)
        n = rows.delete()[0] if target_pk is None else rows.update(customer_id=target_pk)
    if n:
        logger.info("swept %s events written for a customer erased or merged meanwhile (store %s)", n, store_id)
        changes.customers_changed(store_id, [old_pk] if target_pk is None else [old_pk, target_pk])
    return n


def preview_erasure(store: Store, customer: Customer) -> dict[str, int]:
    """The rows :func:`erase_customer` would delete, per table, without deleting anything."""
    with store_scope(store):
        sessions = _session_ids(customer)
        report = Report()
        report.add(Event, Event.objects.filter(customer=customer).count() + _anonymous_events(sessions).count())
        report.add(Customer, 1)
        customer_erasing.send(
            sender=Customer, store=store, customer=customer, session_ids=sessions, report=report, dry_run=True
        )
    return dict(sorted(report.counts.items()))


def erase_customer(store: Store, customer: Customer, actor: Actor) -> ErasureRecord:
    """Delete the customer and every row about them in every package, in one transaction; audit it.

    The serving caches of this process drop the customer at once (the receivers, and
    ``changes.customers_changed`` through the ``Customer`` delete); other processes on commit.
    """
    if customer.store_id != store.pk:
        raise EraseError("not_found", "No such customer in this store.")
    with transaction.atomic(), store_scope(store):
        # Lock the row: a concurrent merge into or erasure of the same customer waits for this one.
        customer = Customer.objects.select_for_update().get(pk=customer.pk)
        sessions = _session_ids(customer)
        report = Report()
        customer_erasing.send(
            sender=Customer, store=store, customer=customer, session_ids=sessions, report=report, dry_run=False
        )
        deleted = Event.objects.filter(customer=customer).delete()[0]
        deleted += _anonymous_events(sessions).delete()[0]
        report.add(Event, deleted)
        pk = customer.pk
        # Customer.delete() also announces the change (changes.connect_signals); named here as well so
        # the cached activity is dropped even if that receiver is ever disconnected.
        report.add(Customer, Customer.objects.filter(pk=pk).delete()[1].get(Customer._meta.label, 0))
        # The stored answers of merges into this customer (keyed by a hash of their id).
        report.add(
            IdempotencyRecord,
            IdempotencyRecord.objects.filter(endpoint=merge_endpoint(customer.external_id)).delete()[0],
        )
        changes.customers_changed(store.pk, [pk])
        transaction.on_commit(lambda: _sweep_late_events(store.pk, pk, None))
        return _record(store, ErasureRecord.Kind.ERASE, actor, report)


def delete_events(store: Store, customer: Customer, event_ids: Iterable[int], actor: Actor) -> ErasureRecord:
    """Delete some of the customer's events (bad data), and what was derived from them; audit it.

    Every id must be one of this customer's events in this store; otherwise nothing is deleted.
    """
    try:
        ids = frozenset(int(i) for i in event_ids)
    except (TypeError, ValueError) as exc:
        raise EraseError("invalid_input", "Event ids must be integers.") from exc
    if not ids:
        raise EraseError("invalid_input", "Name at least one event id.")
    if len(ids) > MAX_EVENT_IDS:
        raise EraseError("invalid_input", f"At most {MAX_EVENT_IDS} event ids per request.")
    with transaction.atomic(), store_scope(store):
        found = set(Event.objects.filter(customer=customer, pk__in=ids).values_list("pk", flat=True))
        missing = sorted(ids - found)
        if missing:
            shown = ", ".join(str(i) for i in missing[:10])
            raise EraseError("not_found", f"Not events of this customer: {shown}.")
        report = Report()
        events_deleting.send(sender=Event, store=store, customer=customer, event_ids=ids, report=report)
        report.add(Event, Event.objects.filter(pk__in=ids).delete()[0])
        changes.customers_changed(store.pk, [customer.pk])
        return _record(store, ErasureRecord.Kind.DELETE_EVENTS, actor, report)


def _fill_blank_fields(target: Customer, source: Customer) -> None:
    """Demographics the target lacks, taken from the source (like MergeUsers keeps the richer profile)."""
    changed = [
        name
        for name in ("country", "age_band", "gender", "signup_date")
        if not getattr(target, name) and getattr(source, name)
    ]
    for name in changed:
        setattr(target, name, getattr(source, name))
    if source.created_at < target.created_at:
        target.created_at = source.created_at
        changed.append("created_at")
    if changed:
        target.save(update_fields=changed)


def merge_customers(store: Store, target: Customer, source_key: str, actor: Actor) -> MergeResult:
    """Fold a duplicate customer (external id ``source_key``) and/or the anonymous session
    ``source_key`` into ``target``; the duplicate is deleted. Idempotent: once merged, the same call
    finds nothing left to move and changes nothing, not even the audit trail.
    """
    source_key = str(source_key)
    if source_key == target.external_id:
        raise EraseError("invalid_input", "A customer cannot be merged into itself.")
    with transaction.atomic(), store_scope(store):
        # Lock both rows in pk order: two merges of the same pair in opposite directions cannot deadlock.
        wanted = Customer.objects.filter(models.Q(pk=target.pk) | models.Q(external_id=source_key))
        locked = {c.pk: c for c in wanted.select_for_update().order_by("pk")}
        if target.pk not in locked:
            raise EraseError("not_found", "No such customer in this store.")
        target = locked[target.pk]
        source = next((c for c in locked.values() if c.pk != target.pk), None)
        report = Report()
        customers_merging.send(
            sender=Customer, store=store, target=target, source=source, session_id=source_key, report=report
        )
        moved = _anonymous_events([source_key]).update(customer=target)
        if source is not None:
            moved += Event.objects.filter(customer=source).update(customer=target)
            _fill_blank_fields(target, source)
            # The duplicate itself: folded in, then deleted (its rows are the target's by now).
            report.add(Customer, Customer.objects.filter(pk=source.pk).delete()[1].get(Customer._meta.label, 0))
        else:
            report.add(Customer, 0)
        report.add(Event, moved)
        counts = dict(sorted(report.counts.items()))
        if not report.total:
            return MergeResult(record=None, counts=counts)
        changes.customers_changed(store.pk, [target.pk] + ([source.pk] if source is not None else []))
        if source is not None:
            source_pk, target_pk = source.pk, target.pk
            transaction.on_commit(lambda: _sweep_late_events(store.pk, source_pk, target_pk))
        return MergeResult(record=_record(store, ErasureRecord.Kind.MERGE, actor, report), counts=counts)
