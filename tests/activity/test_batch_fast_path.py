"""The batch ingestion shortcuts (issue #15) change speed, never outcomes:

* ``services._clean_valid_batch`` (column-wise validation) returns exactly the per-row pass's clean rows
  for a batch the per-row pass accepts, and ``None`` for every batch it refuses (then the per-row pass
  words the errors), on generated batches, valid and not;
* ``services._copy_clean_events`` (one comprehension, then ``sql.copy_event_rows`` with orjson as the
  jsonb dumper) stores the same rows as ``ingest.write_events`` and announces the same change;
* the lean batch view pauses the cyclic garbage collector only while it works.
"""

from __future__ import annotations

import gc
import math
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shop_recs.activity import api_views, changes, ingest, services
from shop_recs.activity.models import Event
from shop_recs.catalog import validation as rules
from shop_recs.catalog.services import upsert_products
from shop_recs.stores.scoping import unscoped
from tests.conftest import require_postgres

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)

# --- generated batches: mostly valid values, with every kind of invalid one mixed in ----------------

ID_CHARS = "AZaz09._:@-"
ids = st.text(alphabet=ID_CHARS, min_size=1, max_size=8)
bad_ids = st.sampled_from(["", "a b", "a/b", "x" * 101, "é", "a\nb", "\x00", 7, None, ["a"], "\ud800"])
texts = st.text(max_size=12)
numbers = st.one_of(
    st.integers(-5, 10),
    st.floats(-10, 10, allow_nan=False),
    st.sampled_from([0, 1, 5, 5.5, -1, 1e10, -1e10, 1e11, math.nan, math.inf, True, "3", 2**70]),
)
stamps = st.one_of(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2025, 6, 1, 12, 5), timezones=st.just(UTC)).map(
        lambda d: d.isoformat()
    ),
    st.sampled_from(
        [
            "2024-06-03T12:00:00Z",
            "2024-06-03T12:00:00+02:00",
            "2024-06-03T12:00:00",  # naive
            "1999-12-31T23:59:59Z",  # before EVENT_TIMESTAMP_MIN
            "2025-06-01T13:00:00Z",  # in the future
            "yesterday",
            17,
        ]
    ),
)
flat_values = st.one_of(texts, st.integers(-(2**64), 2**64), st.floats(allow_nan=True), st.booleans(), st.none())
contexts = st.one_of(
    st.none(),
    st.dictionaries(st.text(max_size=4), flat_values, max_size=3),
    st.dictionaries(st.text(max_size=3), st.lists(flat_values, max_size=2), max_size=2),
    st.sampled_from([{}, [], "ctx", {"a": "\x00"}, {"\ud800": 1}, {1: "non-str key"}, {"deep": [[[[1]]]]}]),
)
TYPES = ["view", "click", "add_to_cart", "remove_from_cart", "purchase", "search", "rating"]


@st.composite
def event_rows(draw, valid_bias: float):
    """One row: each field valid with high probability, or absent, or invalid."""

    def pick(valid, invalid, absent_ok: bool = True):
        roll = draw(st.floats(0, 1))
        if roll < valid_bias:
            return draw(valid)
        if absent_ok and roll < (1 + valid_bias) / 2:
            return ...
        return draw(invalid)

    etype = draw(st.sampled_from(TYPES))
    row: dict = {"type": pick(st.just(etype), st.sampled_from(["like", "", None, 3, "View"]), absent_ok=False)}
    row["customer"] = pick(ids, bad_ids)
    row["session_id"] = pick(ids, bad_ids)
    row["sku"] = pick(st.none() if etype == "search" else ids, bad_ids)
    row["query"] = pick(texts.filter(str.strip) if etype == "search" else st.none(), st.one_of(bad_ids, texts))
    row["value"] = pick(numbers, numbers)
    row["quantity"] = pick(st.integers(1, 3), st.sampled_from([0, -1, 2**31, 1.5, True, "2"]))
    row["order_id"] = pick(ids if etype == "purchase" else st.just(""), bad_ids)
    row["timestamp"] = pick(stamps, stamps, absent_ok=False)
    row["context"] = pick(contexts, contexts)
    if draw(st.integers(0, 30)) == 0:
        row["unknown"] = 1
    return {k: v for k, v in row.items() if v is not ...}


batches = st.one_of(
    st.lists(event_rows(0.97), min_size=1, max_size=12),
    st.lists(event_rows(0.75), min_size=1, max_size=6),
    st.lists(st.one_of(event_rows(0.9), st.sampled_from([None, [], "row", 3])), min_size=1, max_size=4),
)


def _same(a: list[tuple], b: list[tuple]) -> bool:
    """Equal clean rows, with equal types (1 and 1.0 differ here) and equal timestamps' offsets."""
    if a != b:
        return False
    return all(
        [type(x) for x in ra] == [type(y) for y in rb] and ra[8].utcoffset() == rb[8].utcoffset()
        for ra, rb in zip(a, b, strict=True)
    )


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches)
def test_the_column_pass_agrees_with_the_per_row_pass(rows):
    cleaned, errors = services._validate_events(rows, NOW)
    fast = services._clean_valid_batch(rows, NOW)
    if errors:
        assert fast is None, errors
    else:
        # A batch the per-row pass accepts is accepted here too (the shortcut is taken), identically.
        assert fast is not None
        assert _same(fast, cleaned)


def test_the_column_pass_takes_the_usual_batch_and_refuses_each_kind_of_problem():
    good = [
        {"customer": "c-1", "type": "view", "sku": "S-1", "timestamp": "2025-05-01T10:00:00Z"},
        {"session_id": "s:1", "type": "search", "query": "blue mug", "timestamp": "2025-05-01T10:00:01+02:00"},
        {"customer": "c-2", "type": "purchase", "sku": "S-2", "order_id": "o-1", "value": 3,
         "timestamp": "2025-05-01T10:00:02Z"},
        {"customer": "c-2", "type": "add_to_cart", "sku": "S-2", "timestamp": "2025-05-01T10:00:03Z"},
        {"customer": "c-3", "type": "rating", "sku": "S-3", "value": 4, "timestamp": "2025-05-01T10:00:04Z",
         "context": {"list_id": "home", "n": 2, "ok": True, "x": 1.5, "none": None}},
    ]  # fmt: skip
    cleaned, errors = services._validate_events(good, NOW)
    assert not errors
    fast = services._clean_valid_batch(good, NOW)
    assert _same(fast, cleaned)
    assert fast[2][4:6] == (3.0, 1) and fast[3][4:6] == (1.0, 1)  # the defaults of purchase and cart rows
    for field, bad in [
        ("customer", "a\nb"),  # would pass as two ids if joined without the separator count
        ("customer", "x" * 101),
        ("sku", "S 1"),
        ("order_id", "o/1"),
        ("timestamp", "2025-05-01T10:00:00"),
        ("timestamp", "2025-06-01T12:06:00Z"),
        ("value", math.nan),
        ("value", 1e10 + 1),
        ("quantity", 0),
        ("context", {"k": "\x00"}),
        ("context", {"k": 2**63}),
        ("context", {"k": math.inf}),
        ("context", {"k": [math.nan]}),
        ("type", "like"),
    ]:
        rows = [dict(r) for r in good]
        rows[0][field] = bad
        assert services._clean_valid_batch(rows, NOW) is None, (field, bad)
        assert services._validate_events(rows, NOW)[1], (field, bad)


@given(st.lists(st.one_of(st.text(alphabet=ID_CHARS + "\n /é", max_size=102), st.sampled_from(["x" * 100, "x" * 101]))))
def test_the_joined_id_check_is_is_valid_id(values):
    assert services._all_ids(set(values)) == all(map(rules.is_valid_id, values))


@settings(max_examples=300)
@given(st.lists(contexts, max_size=5))
def test_the_bulk_context_check_is_json_problem(values):
    values = [v for v in values if v is None or type(v) is dict]
    expected = not any(rules.json_problem(v) for v in values if v)
    assert services._contexts_ok(values) == expected


# --- the write: the same rows and the same announcement as write_events ------------------------------

COLUMNS = ingest.EVENT_COLUMNS  # every stored column of an event, as the write path lists them


def _batch(n: int) -> list[dict]:
    t0 = datetime(2025, 5, 1, tzinfo=UTC)
    rows = []
    for i in range(n):
        ts = (t0 + timedelta(seconds=i, microseconds=i)).isoformat()
        kind = i % 6
        if kind == 0:
            rows.append({"customer": f"c{i % 7}", "type": "view", "sku": f"P{i % 3}", "timestamp": ts})
        elif kind == 1:
            rows.append({"session_id": f"s{i}", "type": "search", "query": "thé vert", "timestamp": ts})
        elif kind == 2:
            rows.append(
                {"customer": f"c{i % 5}", "type": "purchase", "sku": "P1", "order_id": f"o{i}", "value": 0.1 + i,
                 "quantity": 2, "timestamp": ts}
            )  # fmt: skip
        elif kind == 3:
            rows.append(
                {"customer": "c1", "session_id": "s-x", "type": "click", "sku": "P2", "timestamp": ts,
                 "context": {"list_id": "home", "café": "crème", "n": 2**62, "f": 1e-7, "deep": {"a": [1, 2.5, None]}}}
            )  # fmt: skip
        elif kind == 4:
            rows.append({"customer": "c2", "type": "add_to_cart", "sku": "P0", "timestamp": ts})
        else:
            rows.append({"customer": "c3", "type": "rating", "sku": "P0", "value": 5, "timestamp": ts, "context": {}})
    return rows


def _stored(store) -> list[tuple]:
    with unscoped():
        return list(Event.objects.filter(store=store).order_by("pk").values_list(*COLUMNS))


def _context_texts(store) -> list[str | None]:
    """The jsonb as PostgreSQL prints it: equal text means equal stored values, key order included."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT context::text FROM activity_event WHERE store_id = %s ORDER BY id", [store.pk])
        return [r[0] for r in cursor.fetchall()]


def _write(store, rows, use_write_events: bool, monkeypatch) -> list[tuple]:
    """Store ``rows`` by one of the two paths; return what was announced, as ``events_written`` acts on
    it: the events with the transaction id (write-through), or only the customers (the caches drop them)."""
    calls: list[tuple] = []
    real = changes.events_written

    def record(sid, xid, events, customers):
        customers = set(customers)
        through = xid is not None and events and len(events) <= changes.MAX_EVENTS_PER_MESSAGE
        calls.append((sid, list(events) if through else None, customers))
        real(sid, xid, events, customers)

    monkeypatch.setattr(changes, "events_written", record)
    cleaned = services.clean_event_rows(rows)
    sku_ids = ingest.product_ids_by_sku(store.pk, {r[3] for r in cleaned if r[3]})
    with transaction.atomic():
        customer_ids = ingest.ensure_customers(store.pk, (r[0] for r in cleaned if r[0]))
        if use_write_events:
            ingest.write_events(
                store.pk,
                [
                    (customer_ids.get(c), s, t, sku_ids.get(k), v, q, o, qu, ts, ctx)
                    for c, s, t, k, v, q, o, qu, ts, ctx in cleaned
                ],
            )
        else:
            services._copy_clean_events(store.pk, cleaned, customer_ids, sku_ids)
    monkeypatch.setattr(changes, "events_written", real)
    return calls


@pytest.mark.parametrize("n", [30, 1_500])  # under and over changes.MAX_EVENTS_PER_MESSAGE product events
@pytest.mark.django_db(transaction=True)
def test_the_lean_copy_stores_and_announces_what_write_events_does(store, n, monkeypatch):
    require_postgres()
    upsert_products(store, [{"sku": f"P{i}", "title": f"Product {i}", "price": 10} for i in range(3)])
    rows = _batch(n)
    announced_before = _write(store, rows, True, monkeypatch)
    by_write_events, texts_before = _stored(store), _context_texts(store)
    with unscoped():
        Event.objects.filter(store=store).delete()
    announced_after = _write(store, rows, False, monkeypatch)
    assert _stored(store) == by_write_events
    assert _context_texts(store) == texts_before
    assert len(by_write_events) == n
    assert announced_after == announced_before
    assert (announced_before[0][1] is not None) is (n == 30)  # a small write carries its events (write-through)


@pytest.mark.django_db(transaction=True)
def test_the_copy_json_dumper_falls_back_for_what_orjson_refuses(store):
    require_postgres()
    now = timezone.now()
    row = (store.pk, None, "s-1", "search", None, None, None, "", "q", now, {1: "int key", "big": 2**70}, now)
    with transaction.atomic():
        assert services.activity_sql.copy_event_rows([row]) == 1
    assert _context_texts(store) == ['{"1": "int key", "big": 1180591620717411303424}']


# --- the collector pause ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_lean_batch_view_pauses_the_collector_only_while_it_works(api_client, store, monkeypatch):
    upsert_products(store, [{"sku": "P0", "title": "Product 0", "price": 10}])
    seen: list[bool] = []
    real = api_views.record_event_batch
    monkeypatch.setattr(api_views, "record_event_batch", lambda *a: seen.append(gc.isenabled()) or real(*a))
    body = [{"customer": "c1", "type": "view", "sku": "P0", "timestamp": "2025-05-01T10:00:00Z"}]
    assert gc.isenabled()
    r = api_client.post("/api/v1/events/batch", body, format="json")
    assert r.status_code == 201, r.content
    assert seen == [False] and gc.isenabled()
    # A refused batch (handed to the full path) leaves it on too.
    r = api_client.post("/api/v1/events/batch", [{"type": "like"}], format="json")
    assert r.status_code == 400 and gc.isenabled()


# --- the id lookups: one newline-joined string, or the array when a key could not survive the split ------


@pytest.mark.django_db(transaction=True)
def test_the_id_lookups_find_exactly_the_keys_asked_for(store):
    require_postgres()
    upsert_products(store, [{"sku": f"P{i}", "title": f"Product {i}", "price": 10} for i in range(3)])
    created = ingest.ensure_customers(store.pk, ["a", "b", "c:1"])
    assert set(created) == {"a", "b", "c:1"}
    sql = services.activity_sql
    assert sql.customer_ids(store.pk, ["a", "c:1", "zz"]) == {"a": created["a"], "c:1": created["c:1"]}
    # A key holding the separator, or an empty one, goes as an array: nothing is split or lost.
    assert sql.customer_ids(store.pk, ["a\nb", "b"]) == {"b": created["b"]}
    assert sql.customer_ids(store.pk, ["", "a"]) == {"a": created["a"]}
    skus = sql.product_ids_by_sku(store.pk, ["P0", "P2", "P9"])
    assert sorted(skus) == ["P0", "P2"]
    assert sql.product_ids_by_sku(store.pk, ["P0\nP1"]) == {}
