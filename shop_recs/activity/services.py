"""Activity writes: event ingestion and customer upserts.

Event validation is a hand-written pure-Python pass with the same rules the DRF serializers in
``serializers.py`` document: a 10,000-row batch must validate in tens of milliseconds, which a
serializer per row cannot do. The write goes through ``shop_recs.activity.ingest`` (on PostgreSQL,
``_copy_clean_events``: the same COPY and announcement with less Python per row).
"""

# Long on purpose: event validation is here twice (per row, for exact errors; by column, for speed), to
# be read side by side.
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from shop_recs.activity import changes
from shop_recs.activity import sql as activity_sql
from shop_recs.activity.ingest import ensure_customers, product_ids_by_sku, write_events
from shop_recs.activity.models import Customer, EventType
from shop_recs.api.models import IdempotencyRecord
from shop_recs.catalog import validation as rules
from shop_recs.catalog.services import InvalidRows, RowError, check_batch_shape
from shop_recs.stores.models import Store
from shop_recs.stores.scoping import store_scope

__all__ = [
    "InvalidRows",
    "RowError",
    "EVENT_FIELDS",
    "IngestResult",
    "CustomerUpsertResult",
    "clean_event_rows",
    "ingest_events",
    "clean_customer_rows",
    "upsert_customers",
]

EVENT_FIELDS = (
    "customer",
    "session_id",
    "type",
    "sku",
    "value",
    "quantity",
    "order_id",
    "query",
    "timestamp",
    "context",
)
_ALLOWED = frozenset(EVENT_FIELDS)
_EVENT_TYPES = frozenset(EventType.values)
_TYPES_TEXT = ", ".join(EventType.values)
# Plain str, not the enum members: comparing a str with an enum member goes through the enum's
# slow __eq__/__hash__, which showed up at 10,000 rows.
_CART_TYPES = frozenset({EventType.ADD_TO_CART.value, EventType.REMOVE_FROM_CART.value})


def _future_tolerance() -> timedelta:
    # Client clocks drift; an event a few minutes "in the future" is normal, one days ahead is a bug.
    return timedelta(seconds=settings.EVENT_FUTURE_TOLERANCE_SECONDS)


@dataclass
class IngestResult:
    """What an ingestion wrote."""

    accepted: int


# Long on purpose: the hot loop of event ingestion, one flat pass per row with local aliases; per-field
# helper calls would cost a function call per field per row on every 5,000-row batch.
def _validate_events(rows: list, now: datetime) -> tuple[list[tuple | None], list[RowError]]:
    """Check every row; return (clean row or None per input row, errors).

    A clean row is ``(customer_external_id, session_id, type, sku, value, quantity, order_id,
    query, timestamp, context)``; skus are not resolved yet.
    """
    errors: list[RowError] = []
    err = errors.append
    cleaned: list[tuple | None] = []
    keep = cleaned.append
    latest = now + _future_tolerance()
    earliest = rules.earliest_timestamp()
    fromiso = datetime.fromisoformat
    # The shared value rules (shop_recs.catalog.validation), bound once: ids, text, JSON, numbers.
    id_ok = rules.is_valid_id
    text_problem = rules.text_problem
    value_max = rules.VALUE_MAX
    event_types = _EVENT_TYPES
    allowed = _ALLOWED
    for i, row in enumerate(rows):
        if type(row) is not dict:
            err({"index": i, "field": "non_field_errors", "reason": "expected an object"})
            keep(None)
            continue
        n = len(errors)
        if not allowed.issuperset(row):  # far cheaper than building a key-set difference per row
            for key in sorted(row.keys() - allowed, key=str):
                err({"index": i, "field": str(key), "reason": "unknown field"})

        etype = row.get("type")
        if type(etype) is not str or etype not in event_types:
            err({"index": i, "field": "type", "reason": f"must be one of: {_TYPES_TEXT}"})
            etype = None

        customer = row.get("customer")
        session = row.get("session_id")
        n_who = len(errors)
        if customer is not None and (type(customer) is not str or not customer or len(customer) > 100):
            err({"index": i, "field": "customer", "reason": "must be a non-empty string of at most 100 characters"})
        elif customer is not None and not id_ok(customer):
            err({"index": i, "field": "customer", "reason": f"must be {rules.ID_RULE}"})
        if session is not None and (type(session) is not str or not session or len(session) > 100):
            err({"index": i, "field": "session_id", "reason": "must be a non-empty string of at most 100 characters"})
        elif session is not None and not id_ok(session):
            err({"index": i, "field": "session_id", "reason": f"must be {rules.ID_RULE}"})
        if not customer and not session and len(errors) == n_who:
            err({"index": i, "field": "customer", "reason": "give customer or session_id (or both)"})

        sku = row.get("sku")
        query = row.get("query")
        if etype == "search":
            if sku is not None:
                err({"index": i, "field": "sku", "reason": "must be null for search events"})
            if type(query) is not str or not query.strip():
                err({"index": i, "field": "query", "reason": "required for search events"})
        elif sku is None:
            err({"index": i, "field": "sku", "reason": "this field is required"})
        elif type(sku) is not str or not sku or len(sku) > 100:
            err({"index": i, "field": "sku", "reason": "must be a non-empty string of at most 100 characters"})
        elif not id_ok(sku):
            err({"index": i, "field": "sku", "reason": f"must be {rules.ID_RULE}"})
        if query is not None and (type(query) is not str or len(query) > 500):
            err({"index": i, "field": "query", "reason": "must be a string of at most 500 characters"})
        elif query is not None and (problem := text_problem(query)):
            err({"index": i, "field": "query", "reason": problem})

        value = row.get("value")
        if value is not None:
            if type(value) not in (int, float) or not math.isfinite(value):
                err({"index": i, "field": "value", "reason": "must be a number"})
                value = None
            elif not -value_max <= value <= value_max:
                err({"index": i, "field": "value", "reason": f"must be between {-value_max:.0f} and {value_max:.0f}"})
                value = None
            else:
                value = float(value)
        quantity = row.get("quantity")
        if quantity is not None and (type(quantity) is not int or quantity <= 0 or quantity > 2_147_483_647):
            err({"index": i, "field": "quantity", "reason": "must be a positive integer"})
            quantity = None
        order_id = row.get("order_id")
        if order_id is not None and (type(order_id) is not str or len(order_id) > 100):
            err({"index": i, "field": "order_id", "reason": "must be a string of at most 100 characters"})
        elif order_id and not id_ok(order_id):
            err({"index": i, "field": "order_id", "reason": f"must be {rules.ID_RULE}"})

        if etype == "rating":
            if value is None:
                if "value" not in row or row["value"] is None:
                    err({"index": i, "field": "value", "reason": "rating events need a value from 1 to 5"})
            elif not 1 <= value <= 5:
                err({"index": i, "field": "value", "reason": "rating must be between 1 and 5"})
        elif etype == "purchase":
            if type(order_id) is not str or not order_id.strip():
                err({"index": i, "field": "order_id", "reason": "required for purchase events"})
            if value is not None and value < 0:
                err({"index": i, "field": "value", "reason": "unit price must be >= 0"})
            if quantity is None:
                quantity = 1
        elif etype in _CART_TYPES:
            if quantity is None:
                quantity = 1
            if value is None:
                value = float(quantity)  # the model's convention: value is the quantity for cart events

        ts_raw = row.get("timestamp")
        ts = None
        if type(ts_raw) is not str:
            err({"index": i, "field": "timestamp", "reason": "required, an ISO-8601 string with a time zone"})
        else:
            try:
                ts = fromiso(ts_raw)
            except ValueError:
                err({"index": i, "field": "timestamp", "reason": f"not an ISO-8601 date-time: {ts_raw[:40]!r}"})
            else:
                problem = rules.timestamp_problem(ts, earliest, latest)
                if problem:
                    err({"index": i, "field": "timestamp", "reason": problem})
                    ts = None

        context = row.get("context")
        if context is not None and type(context) is not dict:
            err({"index": i, "field": "context", "reason": "must be an object"})
        elif context and (problem := rules.json_problem(context)):
            err({"index": i, "field": "context", "reason": problem})

        if len(errors) == n:
            keep((customer, session, etype, sku, value, quantity, order_id, query, ts, context))
        else:
            keep(None)
    return cleaned, errors


_NONE_TYPE = type(None)
_VALUE_TYPES = frozenset({int, float, _NONE_TYPE})
_QUANTITY_TYPES = frozenset({int, _NONE_TYPE})
_CONTEXT_TYPES = frozenset({dict, _NONE_TYPE})
_STR_TYPES = frozenset({str, _NONE_TYPE})
#: The types whose value and quantity rules differ per row (defaults, ranges, a required order id).
_SPECIAL_TYPES = frozenset({"rating", "purchase", *_CART_TYPES})
#: Many ids joined by newlines, each one ``rules.is_valid_id`` (the same character set and length; a test
#: compares the two): one regex call for a column's distinct ids instead of one call per id (10x).
_ID_LINES = re.compile(r"(?:[A-Za-z0-9._:@-]{1,100}\n)*[A-Za-z0-9._:@-]{1,100}")
#: The value types of a flat context checked in bulk (anything else: ``rules.json_problem`` per context).
_FLAT_JSON_TYPES = frozenset({str, int, float, bool, _NONE_TYPE})
_JSON_INT_LIMIT = 2**63  # as rules.json_problem: |int| < 2**63


def _all_ids(values: set) -> bool:
    """Whether every value of the set is a valid id (``rules.is_valid_id``)."""
    values.discard(None)
    if not values:
        return True
    if set(map(type, values)) != {str}:
        return False
    joined = "\n".join(values)
    # An id holding a newline would pass as two ids: the count of separators rules it out.
    return joined.count("\n") == len(values) - 1 and _ID_LINES.fullmatch(joined) is not None


def _contexts_ok(contexts: list) -> bool:
    """Whether no context has a ``rules.json_problem``: in bulk for flat objects of scalars (the usual
    context, e.g. a list id and a placement), per context otherwise."""
    filled = list(filter(None, contexts))
    if not filled:
        return True
    keys = [k for c in filled for k in c]
    values = [v for c in filled for v in c.values()]
    if set(map(type, keys)) != {str} or not set(map(type, values)) <= _FLAT_JSON_TYPES:
        return not any(map(rules.json_problem, filled))
    texts = [v for v in values if type(v) is str]
    if rules.text_problem("".join(keys)) or (texts and rules.text_problem("".join(texts))):
        return False
    ints = [v for v in values if type(v) is int]
    if ints and (min(ints) <= -_JSON_INT_LIMIT or max(ints) >= _JSON_INT_LIMIT):
        return False
    floats = [v for v in values if type(v) is float]
    return not floats or math.isfinite(sum(floats))


def _clean_valid_batch(rows: list, now: datetime) -> list[tuple] | None:
    """The clean rows :func:`_validate_events` returns for a batch without a single error, computed
    column by column; ``None`` as soon as anything is not plainly valid, and then the per-row pass runs
    and words every error (so refusals stay its own, word for word and in order).

    Why: the per-row pass costs ~60 Python operations a row, ~20 ms a 10,000-row batch. Here each
    field is one list comprehension, checked once per column or per distinct value in C-level
    ``set``/``map``/``min``/``max`` (one regex call for all distinct ids): ~14 ms. Same rules, same
    output: ``tests/activity/test_batch_fast_path.py`` compares the two on generated batches.
    """
    try:
        return _columns_if_valid(rows, now)
    except (TypeError, ValueError, OverflowError):
        # An unhashable id, a naive timestamp compared with an aware one, an int too large for a
        # float: not plainly valid, so the per-row pass decides (and words) it.
        return None


# Long on purpose: one flat sequence of column checks; splitting it would pass ten columns around.
def _columns_if_valid(rows: list, now: datetime) -> list[tuple] | None:
    if set(map(type, rows)) != {dict} or not set().union(*rows) <= _ALLOWED:
        return None
    types = [r.get("type") for r in rows]
    if set(map(type, types)) != {str}:
        return None
    kinds = set(types)
    if not kinds <= _EVENT_TYPES:
        return None
    customers = [r.get("customer") for r in rows]
    sessions = [r.get("session_id") for r in rows]
    if not _all_ids(set(customers)) or not _all_ids(set(sessions)):
        return None
    if None in customers and any(c is None and s is None for c, s in zip(customers, sessions, strict=True)):
        return None

    skus = [r.get("sku") for r in rows]
    queries = [r.get("query") for r in rows]
    if "search" in kinds:
        if any((t == "search") is not (k is None) for t, k in zip(types, skus, strict=True)):
            return None
        if not all(type(q) is str and q.strip() for t, q in zip(types, queries, strict=True) if t == "search"):
            return None
    elif None in skus:
        return None
    if not _all_ids(set(skus)):
        return None
    texts = [q for q in queries if q is not None]
    if texts and (set(map(type, texts)) != {str} or max(map(len, texts)) > 500 or rules.text_problem("".join(texts))):
        return None

    values = [r.get("value") for r in rows]
    value_types = set(map(type, values))
    if not value_types <= _VALUE_TYPES:
        return None
    numbers = [v for v in values if v is not None]
    # NaN or an infinity makes the sum non-finite; with the sum finite, min/max are exact.
    if numbers and (
        not math.isfinite(sum(numbers)) or min(numbers) < -rules.VALUE_MAX or max(numbers) > rules.VALUE_MAX
    ):
        return None
    if int in value_types:
        values = [v if v is None else float(v) for v in values]
    quantities = [r.get("quantity") for r in rows]
    if not set(map(type, quantities)) <= _QUANTITY_TYPES:
        return None
    counts = [q for q in quantities if q is not None]
    if counts and (min(counts) <= 0 or max(counts) > 2_147_483_647):
        return None
    orders = [r.get("order_id") for r in rows]
    ids = set(orders)
    if not set(map(type, ids)) <= _STR_TYPES or not _all_ids(set(filter(None, ids))):
        return None

    if kinds & _SPECIAL_TYPES:
        values = list(values)
        quantities = list(quantities)
        special = _SPECIAL_TYPES
        for i, etype in enumerate(types):
            if etype not in special:
                continue
            value = values[i]
            if etype == "rating":
                if value is None or not 1 <= value <= 5:
                    return None
            elif etype == "purchase":
                if not orders[i] or (value is not None and value < 0):
                    return None
                if quantities[i] is None:
                    quantities[i] = 1
            else:  # a cart event: the quantity defaults to 1, the value to the quantity
                if quantities[i] is None:
                    quantities[i] = 1
                if value is None:
                    values[i] = float(quantities[i])

    stamps = [r.get("timestamp") for r in rows]
    if set(map(type, stamps)) != {str}:
        return None
    parsed = list(map(datetime.fromisoformat, stamps))
    first, last = min(parsed), max(parsed)  # TypeError if naive and aware times are mixed
    if first.tzinfo is None or first.utcoffset() is None or last.tzinfo is None or last.utcoffset() is None:
        return None
    if first < rules.earliest_timestamp() or last > now + _future_tolerance():
        return None

    contexts = [r.get("context") for r in rows]
    if not set(map(type, contexts)) <= _CONTEXT_TYPES or not _contexts_ok(contexts):
        return None
    return list(
        zip(customers, sessions, types, skus, values, quantities, orders, queries, parsed, contexts, strict=True)
    )


def clean_event_rows(rows: object, *, max_rows: int | None = None, now: datetime | None = None) -> list[tuple]:
    """Validate a batch as a whole (no database access). Raises ``InvalidRows`` listing every bad row."""
    check_batch_shape(rows, max_rows, "events")
    cleaned, errors = _validate_events(rows, now or timezone.now())  # type: ignore[arg-type]
    if errors:
        raise InvalidRows(errors)
    return cleaned  # type: ignore[return-value]


def ingest_events(store: Store, rows: object, *, max_rows: int | None = None) -> IngestResult:
    """Validate and store a batch of events: all of it, or (``InvalidRows``) none of it.

    Unknown skus are errors naming the sku; unknown customers are created, but only once the whole
    batch is known to be valid. One query resolves all skus, one (plus one insert) all customers,
    and the events go in with one COPY on PostgreSQL.
    """
    if max_rows is None:
        max_rows = settings.EVENT_BATCH_MAX
    check_batch_shape(rows, max_rows, "events")
    now = timezone.now()
    cleaned = _clean_valid_batch(rows, now)  # type: ignore[arg-type]
    errors: list[RowError] = []
    if cleaned is None:  # not plainly valid: the per-row pass decides, and words every error
        cleaned, errors = _validate_events(rows, now)  # type: ignore[arg-type]
    if errors:
        # Look up the skus of every row, the invalid ones too, so one 400 answer names every problem.
        skus = {
            row["sku"]
            for row in rows  # type: ignore[union-attr]
            if type(row) is dict and type(row.get("sku")) is str and row["sku"] and row.get("type") != "search"
        }
    else:
        skus = {r[3] for r in cleaned if r[3] is not None}  # type: ignore[index]
    sku_ids = product_ids_by_sku(store.pk, skus) if skus else {}
    if len(sku_ids) < len(skus):
        for i, row in enumerate(rows):  # type: ignore[arg-type]
            sku = row.get("sku") if type(row) is dict else None
            if type(sku) is str and sku in skus and sku not in sku_ids and row.get("type") != "search":
                errors.append({"index": i, "field": "sku", "reason": f"unknown product {sku!r}"})
    if errors:
        errors.sort(key=lambda e: e["index"])
        raise InvalidRows(errors)

    with transaction.atomic():
        customer_ids = ensure_customers(store.pk, (r[0] for r in cleaned if r[0]))  # type: ignore[index]
        if connection.vendor == "postgresql":
            written = _copy_clean_events(store.pk, cleaned, customer_ids, sku_ids)  # type: ignore[arg-type]
        else:
            written = write_events(
                store.pk,
                (
                    (customer_ids[c] if c else None, s, t, sku_ids[k] if k is not None else None, v, q, o, qu, ts, ctx)
                    for c, s, t, k, v, q, o, qu, ts, ctx in cleaned  # type: ignore[misc]
                ),
            )
    return IngestResult(accepted=written)


def _copy_clean_events(
    store_id: int, cleaned: list[tuple], customer_ids: dict[str, int], sku_ids: dict[str, int]
) -> int:
    """PostgreSQL: ``ingest.write_events`` for validated rows (one binary COPY, the same announcement),
    with each COPY tuple built once: there a row passes three generators (id resolution, announcement
    bookkeeping, ``sql.copy_events``' tuple). ``tests/activity/test_batch_fast_path.py`` checks that
    both store the same rows and announce the same change.
    """
    now = timezone.now()
    # None maps to None (anonymous rows, search rows); any other id is there, or KeyError as write_events.
    customer_of, product_of = {**customer_ids, None: None}.__getitem__, {**sku_ids, None: None}.__getitem__
    rows = [
        (store_id, customer_of(c), s or "", t, product_of(k), v, q, o or "", qu or "", ts, ctx, now)  # type: ignore[arg-type]
        for c, s, t, k, v, q, o, qu, ts, ctx in cleaned
    ]
    count = activity_sql.copy_event_rows(rows)
    # As write_events: the product events of known customers ride in the message when there are few
    # enough; otherwise the customers are named (and above MAX_NAMED_CUSTOMERS, the whole store).
    cap = changes.MAX_EVENTS_PER_MESSAGE
    known = [r for r in rows if r[1] is not None and r[4] is not None]
    written: list[changes.WrittenEvent] = []
    xid = None
    if known and len(known) <= cap:
        kind_code, other, epoch_us = changes.KIND_CODE.get, changes.OTHER_KIND, changes.epoch_us
        written = [(r[1], r[4], kind_code(r[3], other), epoch_us(r[9])) for r in known]
        if connection.in_atomic_block:  # outside one the COPY committed on its own: no id to tell it by
            xid = activity_sql.current_xid()
    changes.events_written(store_id, xid, written, {r[1] for r in rows})
    return count


def lean_event_possible() -> bool:
    """Whether :func:`record_one_event` may run here: PostgreSQL, outside a transaction (its one
    statement is its own transaction, committed before it returns)."""
    return connection.vendor == "postgresql" and not connection.in_atomic_block


def record_one_event(store: Store, data: object, idempotency: tuple[str, str, str, int, str] | None = None) -> bool:
    """The lean path of ``POST /events``: validate one event with the same rules as
    :func:`ingest_events` and store it in one statement, committed (``sql.insert_one_event_pg``), with
    its idempotency record when ``idempotency`` is given (``(endpoint, key, body hash, status, answer)``).

    ``True``: stored, committed and announced (write-through). ``False``: nothing was written and the
    caller answers through :func:`ingest_events` — invalid input, an unknown sku, or a customer another
    request was creating at that moment — so every refusal is the full path's, word for word. A
    repeated idempotency key raises ``IntegrityError`` (nothing written). Call only when
    :func:`lean_event_possible`.
    """
    if type(data) is not dict:
        return False
    now = timezone.now()
    cleaned, errors = _validate_events([data], now)
    if errors:
        return False
    row = cleaned[0]
    written, customer_pk, product_pk, xid = activity_sql.insert_one_event_pg(store.pk, row, now, idempotency)  # type: ignore[arg-type]
    if not written:
        return False
    if customer_pk is not None and product_pk is not None:
        event = (customer_pk, product_pk, changes.KIND_CODE.get(row[2], changes.OTHER_KIND), changes.epoch_us(row[8]))  # type: ignore[index]
        changes.events_written(store.pk, xid, [event], [customer_pk])
    return True


def record_event_batch(store: Store, rows: object, idempotency: tuple[str, str, str] | None = None) -> int | None:
    """The lean path of ``POST /events/batch``: :func:`ingest_events` (same validation, same write)
    and, with ``idempotency`` (``(endpoint, key, body hash)``), the idempotency record with its answer,
    in one transaction. Returns how many events were stored, or ``None`` when nothing was written and
    the caller answers through the full path (an invalid batch: its 400 lists every bad row there).
    A repeated key raises ``IntegrityError`` (the whole transaction, events included, is rolled back):
    a concurrent duplicate waits on the key's unique index and then fails, so nothing is stored twice.
    """
    try:
        with transaction.atomic():
            result = ingest_events(store, rows, max_rows=settings.EVENT_BATCH_MAX)
            if idempotency is not None:
                endpoint, key, request_hash = idempotency
                with store_scope(store):
                    IdempotencyRecord.objects.create(
                        store=store,
                        endpoint=endpoint,
                        key=key,
                        request_hash=request_hash,
                        response_status=201,
                        response_body={"accepted": result.accepted},
                    )
    except InvalidRows:
        return None
    return result.accepted


# --- Customers -------------------------------------------------------------------------------

CUSTOMER_FIELDS = {"country": 64, "age_band": 16, "gender": 16}
_CUSTOMER_KEYS = frozenset(CUSTOMER_FIELDS) | {"external_id", "signup_date"}


@dataclass
class CustomerUpsertResult:
    """What a customer upsert did."""

    created: int
    updated: int


def clean_customer_rows(rows: object, *, max_rows: int | None = None) -> list[dict[str, Any]]:
    """Validate customer dicts (``external_id`` + profile fields) as a whole."""
    check_batch_shape(rows, max_rows, "customers")
    errors: list[RowError] = []
    cleaned: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for i, row in enumerate(rows):  # type: ignore[arg-type]
        if not isinstance(row, dict):
            errors.append({"index": i, "field": "non_field_errors", "reason": "expected an object"})
            continue
        n = len(errors)
        for key in sorted(row.keys() - _CUSTOMER_KEYS, key=str):
            errors.append({"index": i, "field": str(key), "reason": "unknown field"})
        ext = row.get("external_id")
        if not isinstance(ext, str) or not ext.strip() or len(ext) > 100 or "/" in ext:
            errors.append({"index": i, "field": "external_id", "reason": "required, at most 100 characters, no '/'"})
        elif not rules.is_valid_id(ext):
            errors.append({"index": i, "field": "external_id", "reason": f"must be {rules.ID_RULE}"})
        elif ext in seen:
            errors.append({"index": i, "field": "external_id", "reason": f"duplicate of row {seen[ext]}"})
        else:
            seen[ext] = i
        out: dict[str, Any] = {"external_id": ext}
        for name, max_len in CUSTOMER_FIELDS.items():
            value = row.get(name)
            if value is None:
                value = ""
            elif not isinstance(value, str) or len(value) > max_len:
                errors.append(
                    {"index": i, "field": name, "reason": f"must be a string of at most {max_len} characters"}
                )
            elif problem := rules.text_problem(value):
                errors.append({"index": i, "field": name, "reason": problem})
            out[name] = value
        signup = row.get("signup_date")
        if signup is not None:
            try:
                if not isinstance(signup, str):
                    raise ValueError
                signup = date.fromisoformat(signup)
            except ValueError:
                errors.append({"index": i, "field": "signup_date", "reason": "must be a date like '2024-05-31'"})
        out["signup_date"] = signup
        if len(errors) == n:
            cleaned.append(out)
    if errors:
        raise InvalidRows(errors)
    return cleaned


def upsert_customers(store: Store, rows: list[dict[str, Any]], *, max_rows: int | None = None) -> CustomerUpsertResult:
    """Create or replace customers by external id (omitted profile fields are cleared)."""
    cleaned = clean_customer_rows(rows, max_rows=max_rows)
    ids = [r["external_id"] for r in cleaned]
    with transaction.atomic():
        existing_pks = list(Customer.all_stores.filter(store=store, external_id__in=ids).values_list("pk", flat=True))
        existing = len(existing_pks)
        now = timezone.now()
        Customer.all_stores.bulk_create(
            # Sorted: one lock order for concurrent upserts, so they wait instead of deadlocking.
            [Customer(store=store, created_at=now, **r) for r in sorted(cleaned, key=lambda r: r["external_id"])],
            batch_size=1000,
            update_conflicts=True,
            unique_fields=["store", "external_id"],
            update_fields=["country", "age_band", "gender", "signup_date"],
        )
        # Serving caches customers with their country (cold start by country).
        changes.customers_changed(store.pk, existing_pks)
    return CustomerUpsertResult(created=len(ids) - existing, updated=existing)
