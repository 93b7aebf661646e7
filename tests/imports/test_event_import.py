from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command

from shop_recs.activity.models import Customer, Event
from shop_recs.imports import csv_importers
from shop_recs.imports.importers import import_events
from shop_recs.imports.models import ImportJob, ImportStatus
from shop_recs.stores.scoping import store_scope

HEADER = "customer,session_id,type,sku,value,quantity,order_id,query,timestamp,context\n"
GOOD = HEADER + (
    'c1,s1,view,P1,,,,,2024-05-01T10:00:00Z,"{""list_id"": ""home""}"\n'
    "c1,s1,add_to_cart,P1,1,,,,2024-05-01T10:01:00Z,\n"
    "c1,s1,purchase,P1,9.5,2,o-1,,2024-05-01T10:05:00+02:00,\n"
    ",anon-9,search,,,,,red mug,2024-05-01 11:00:00,\n"
    "c2,,rating,P2,4,,,,2024-05-02T09:00:00Z,\n"
)


@pytest.fixture
def catalog(store, make_product):
    make_product(store, "P1")
    make_product(store, "P2")


def test_events_csv_import(store, catalog, write_file):
    job = import_events(store, write_file("events.csv", GOOD))
    assert job.status == ImportStatus.SUCCEEDED, job.message
    assert (job.rows_read, job.rows_imported) == (5, 5)
    assert job.report["customers_created"] == 2
    with store_scope(store):
        assert set(Customer.objects.values_list("external_id", flat=True)) == {"c1", "c2"}
        purchase = Event.objects.get(event_type="purchase")
        assert (purchase.value, purchase.quantity, purchase.order_id) == (9.5, 2, "o-1")
        assert purchase.timestamp == datetime(2024, 5, 1, 8, 5, tzinfo=UTC)
        search = Event.objects.get(event_type="search")
        assert search.customer is None and search.session_id == "anon-9" and search.query == "red mug"
        # No offset: read in the store's time zone (UTC here).
        assert search.timestamp == datetime(2024, 5, 1, 11, 0, tzinfo=UTC)
        assert Event.objects.get(event_type="view").context == {"list_id": "home"}


def test_events_jsonl_import(store, catalog, write_file):
    lines = [
        {"customer": "c1", "type": "view", "sku": "P1", "timestamp": "2024-05-01T10:00:00Z"},
        {"customer": "c1", "type": "purchase", "sku": "P2", "value": 3.5, "quantity": 1, "timestamp": 1714557600},
        {
            "session_id": "s9",
            "type": "search",
            "query": "mug",
            "timestamp": "2024-05-01T10:00:00Z",
            "context": {"a": 1},
        },
    ]
    path = write_file("events.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n")
    job = import_events(store, path)
    assert job.status == ImportStatus.SUCCEEDED, job.message
    with store_scope(store):
        assert Event.objects.count() == 3
        assert Event.objects.get(event_type="search").context == {"a": 1}


def test_reimporting_the_same_file_writes_nothing(store, catalog, write_file):
    path = write_file("events.csv", GOOD)
    first = import_events(store, path)
    second = import_events(store, path)
    assert second.status == ImportStatus.DUPLICATE
    assert f"#{first.pk}" in second.message
    with store_scope(store):
        assert Event.objects.count() == 5 and Customer.objects.count() == 2


def test_same_file_into_another_store_is_not_a_duplicate(store, other_store, catalog, make_product, write_file):
    make_product(other_store, "P1")
    make_product(other_store, "P2")
    path = write_file("events.csv", GOOD)
    import_events(store, path)
    assert import_events(other_store, path).status == ImportStatus.SUCCEEDED


@pytest.mark.parametrize(
    ("row", "line", "fragment"),
    [
        ("c1,s1,view,P1,abc,,,,2024-05-01T10:00:00Z,", 3, "value"),
        ("c1,s1,view,P1,,1.5,,,2024-05-01T10:00:00Z,", 3, "quantity"),
        ("c1,s1,view,P1,,,,,01/05/2024 10:00,", 3, "ISO 8601"),
        ("c1,s1,wave,P1,,,,,2024-05-01T10:00:00Z,", 3, "unknown event type"),
        ("c1,s1,view,NOPE,,,,,2024-05-01T10:00:00Z,", 3, "unknown sku 'NOPE'"),
        (",,view,P1,,,,,2024-05-01T10:00:00Z,", 3, "customer or a session_id"),
        ("c1,s1,view,P1,,,,,2024-05-01T10:00:00Z,{not json}", 3, "not valid JSON"),
        ("c1,s1,view,P1", 3, "expected 10 columns"),
    ],
)
def test_malformed_rows_fail_with_line_numbers_and_write_nothing(store, catalog, write_file, row, line, fragment):
    text = HEADER + "new-customer,s1,view,P1,,,,,2024-05-01T09:00:00Z,\n" + row + "\n"
    job = import_events(store, write_file("bad.csv", text))
    assert job.status == ImportStatus.FAILED
    assert job.errors[0]["line"] == line, job.errors
    assert fragment in job.errors[0]["message"]
    with store_scope(store):
        assert Event.objects.count() == 0
        assert Customer.objects.count() == 0  # the customer created for line 2 was rolled back


def test_wrong_columns_are_rejected(store, catalog, write_file):
    job = import_events(store, write_file("bad.csv", "customer,kind,sku,timestamp\nc1,view,P1,2024-05-01\n"))
    assert job.status == ImportStatus.FAILED
    assert job.errors[0]["line"] == 1
    assert "type" in job.errors[0]["message"] and "kind" in job.errors[0]["message"]


def test_error_after_a_written_chunk_rolls_everything_back(store, catalog, write_file, monkeypatch):
    monkeypatch.setattr(csv_importers, "CHUNK_ROWS", 2)
    rows = "".join(f"c{i},s{i},view,P1,,,,,2024-05-01T10:00:00Z,\n" for i in range(7))
    text = HEADER + rows + "c9,s9,view,UNKNOWN,,,,,2024-05-01T10:00:00Z,\n"
    job = import_events(store, write_file("late.csv", text))
    assert job.status == ImportStatus.FAILED and job.errors[0]["line"] == 9
    with store_scope(store):
        assert Event.objects.count() == 0 and Customer.objects.count() == 0
        assert ImportJob.objects.get().status == ImportStatus.FAILED


def test_import_into_store_a_never_touches_store_b(store, other_store, make_product, write_file):
    make_product(store, "P1")
    make_product(store, "P2")
    make_product(other_store, "ONLY-B")
    assert import_events(store, write_file("ok.csv", GOOD)).status == ImportStatus.SUCCEEDED
    # A sku that exists only in store B is unknown to store A.
    bad = HEADER + "c1,s1,view,ONLY-B,,,,,2024-05-01T10:00:00Z,\n"
    assert import_events(store, write_file("b.csv", bad)).status == ImportStatus.FAILED
    with store_scope(other_store):
        assert Event.objects.count() == 0 and Customer.objects.count() == 0
        assert ImportJob.objects.count() == 0


def test_import_events_command(store, catalog, write_file, capsys):
    path = write_file("events.csv", GOOD)
    call_command("import_events", "--store", store.slug, str(path), "--no-progress")
    assert "succeeded" in capsys.readouterr().out
    call_command("import_events", "--store", store.slug, str(path), "--no-progress")
    assert "already imported" in capsys.readouterr().out
    with pytest.raises(CommandError, match="failed"):
        call_command("import_events", "--store", store.slug, str(write_file("x.csv", "a,b\n1,2\n")), "--no-progress")
    with pytest.raises(CommandError, match="No store"):
        call_command("import_events", "--store", "nope", str(path))
