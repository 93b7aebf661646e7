"""The OpenAPI schema, and the PostgreSQL COPY write path."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from shop_recs.activity import ingest
from shop_recs.activity import sql as activity_sql
from shop_recs.activity.models import Customer, Event
from shop_recs.stores.scoping import unscoped
from tests.conftest import require_postgres

pytestmark = pytest.mark.django_db


def test_schema_lists_the_endpoints(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    import json

    schema = json.loads(response.content)
    paths = schema["paths"]
    for path, method in [
        ("/api/v1/products", "get"),
        ("/api/v1/products/{sku}", "put"),
        ("/api/v1/products/{sku}", "delete"),
        ("/api/v1/products/{sku}/deactivate", "post"),
        ("/api/v1/products/bulk", "post"),
        ("/api/v1/customers/{external_id}", "put"),
        ("/api/v1/customers/bulk", "post"),
        ("/api/v1/events", "post"),
        ("/api/v1/events/batch", "post"),
    ]:
        assert method in paths[path], path
    batch = paths["/api/v1/events/batch"]["post"]
    assert "Idempotency-Key" in {p["name"] for p in batch["parameters"]}
    assert "400" in batch["responses"] and "201" in batch["responses"]
    assert "Error" in schema["components"]["schemas"]
    assert client.get("/api/docs/").status_code == 200


def test_ingest_interface_outside_a_scope(store, make_product):
    product = make_product(store, "SKU-1")
    ids = ingest.ensure_customers(store.pk, ["a", "b", "a"])
    assert set(ids) == {"a", "b"}
    assert ingest.ensure_customers(store.pk, ["a", "c"])["a"] == ids["a"]
    assert ingest.product_ids_by_sku(store.pk, ["SKU-1", "nope"]) == {"SKU-1": product.pk}
    ts = datetime(2025, 1, 1, tzinfo=UTC)
    rows = [(ids["a"], None, "view", product.pk, None, None, None, None, ts, {"k": [1, "é"]})]
    rows.append((None, "s1", "search", None, None, None, None, "mug", ts, None))
    with transaction.atomic():
        assert ingest.write_events(store.pk, iter(rows)) == 2
    with unscoped():
        assert Customer.objects.filter(store=store).count() == 3
        by_type = {e.event_type: e for e in Event.objects.filter(store=store)}
    assert by_type["view"].context == {"k": [1, "é"]}
    assert by_type["search"].session_id == "s1" and by_type["search"].query == "mug"
    assert by_type["view"].order_id == "" and by_type["view"].timestamp == ts


def test_postgres_batch_uses_copy(store, api_client, make_product):
    require_postgres()
    make_product(store, "SKU-1")
    rows = [
        {
            "customer": f"c{i}",
            "type": "view",
            "sku": "SKU-1",
            "timestamp": "2025-03-01T12:00:00+01:00",
            "context": {"tab": "a\tb\\n"},
        }
        for i in range(50)
    ]
    with CaptureQueriesContext(connection) as queries:
        response = api_client.post("/api/v1/events/batch", rows, format="json")
    assert response.status_code == 201
    sql = [q["sql"] for q in queries.captured_queries]
    assert not any('INSERT INTO "activity_event"' in s for s in sql)
    with unscoped():
        events = list(Event.objects.filter(store=store).select_related("customer"))
    assert len(events) == 50
    assert {e.customer.external_id for e in events} == {f"c{i}" for i in range(50)}
    assert all(e.timestamp == datetime(2025, 3, 1, 11, tzinfo=UTC) for e in events)
    assert events[0].context == {"tab": "a\tb\\n"}


def test_postgres_copy_is_called(store, make_product, monkeypatch):
    require_postgres()
    product = make_product(store, "SKU-1")
    used = []
    real = activity_sql.copy_events
    monkeypatch.setattr(activity_sql, "copy_events", lambda *a: used.append(1) or real(*a))
    monkeypatch.setattr(ingest, "_bulk_create_events", lambda *a: pytest.fail("bulk_create on Postgres"))
    ts = datetime(2025, 1, 1, tzinfo=UTC)
    assert ingest.write_events(store.pk, [(None, "s", "view", product.pk, 1.5, 2, "", "", ts, None)]) == 1
    assert used == [1]
    with unscoped():
        ev = Event.objects.get(store=store)
    assert (ev.value, ev.quantity, ev.context) == (1.5, 2, None)


@pytest.mark.django_db(transaction=True)
def test_postgres_concurrent_duplicates_write_once(store, api_key, make_product):
    """Two identical requests with one Idempotency-Key at the same moment: one write, one replay."""
    require_postgres()
    import json

    from rest_framework.test import APIClient

    from tests.api.helpers import count, event
    from tests.threads import run_in_threads

    make_product(store, "SKU-1")
    body = json.dumps([event(customer=f"c{i}") for i in range(2000)])

    def twin(_i: int) -> tuple[int, str | None, dict]:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
        r = client.post("/api/v1/events/batch", body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="twin")
        return (r.status_code, r.headers.get("Idempotent-Replayed"), r.json())

    results = run_in_threads(twin, 2, timeout=60)
    assert [r[0] for r in results] == [201, 201]
    assert sorted(str(r[1]) for r in results) == ["None", "true"]
    assert results[0][2] == results[1][2] == {"accepted": 2000}
    assert count(Event, store=store) == 2000
    assert count(Customer, store=store) == 2000
