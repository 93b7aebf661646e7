"""Issue 12 §1: a merchant finds and deletes bad events on the customer page, and the API offers the
same through the erasure path, including rows stored before validation that no page can otherwise
show (a year-1 timestamp PostgreSQL keeps as 1 BC, a value of 1e300)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.urls import reverse

from shop_recs.activity.models import ErasureRecord, Event
from shop_recs.stores.scoping import unscoped
from tests.conftest import require_postgres

pytestmark = pytest.mark.django_db

T = datetime(2025, 3, 1, 12, tzinfo=UTC)


@pytest.fixture
def bad(store, make_customer, make_product):
    product = make_product(store, "SKU-1")
    customer = make_customer(store, "bad-1")
    with unscoped():
        good = Event.objects.create(store=store, customer=customer, product=product, event_type="view", timestamp=T)
        huge = Event.objects.create(
            store=store, customer=customer, product=product, event_type="purchase", value=1e300, quantity=2, timestamp=T
        )
    return {"customer": customer, "product": product, "good": good, "huge": huge}


def add_year_one(store, bad) -> int:
    """What PostgreSQL made of ``0001-01-01T00:00:00+14:00``: a row Python cannot read back."""
    require_postgres()
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO activity_event (store_id, customer_id, product_id, session_id, event_type, order_id,"
            " query, timestamp, received_at) VALUES (%s, %s, %s, '', 'view', '', '',"
            " '0001-01-01T00:00:00+14:00'::timestamptz, now()) RETURNING id",
            [store.pk, bad["customer"].pk, bad["product"].pk],
        )
        return cur.fetchone()[0]


def page(store, name: str, customer) -> str:
    return reverse(f"dashboard:{name}", kwargs={"store_slug": store.slug, "external_id": customer.external_id})


def test_the_customer_page_lists_unreadable_events_to_delete(client, store, merchant, bad):
    client.force_login(merchant)
    response = client.get(page(store, "customer_detail", bad["customer"]))
    assert response.status_code == 200
    listed = [e.pk for e in response.context["bad_events"]]
    assert listed == [bad["huge"].pk]  # the good event is not "bad"
    html = response.content.decode()
    assert 'id="bad-events"' in html and f'name="ids" value="{bad["huge"].pk}"' in html

    confirm = client.get(page(store, "delete_customer_events", bad["customer"]), {"ids": [bad["huge"].pk]})
    assert confirm.status_code == 200 and "1e+300" in confirm.content.decode()
    done = client.post(
        page(store, "delete_customer_events", bad["customer"]), {"ids": [bad["huge"].pk], "confirm": "yes"}
    )
    assert done.status_code == 302
    with unscoped():
        assert list(Event.objects.filter(customer=bad["customer"]).values_list("pk", flat=True)) == [bad["good"].pk]
        assert ErasureRecord.objects.get().row_counts["activity.Event"] == 1


def test_the_api_lists_and_deletes_unreadable_events(store, api_client, bad):
    rows = api_client.get("/api/v1/customers/bad-1/events").json()
    by_id = {r["id"]: r for r in rows}
    assert by_id[bad["huge"].pk]["readable"] is False and by_id[bad["huge"].pk]["value"] == 1e300
    assert by_id[bad["good"].pk]["readable"] is True and by_id[bad["good"].pk]["timestamp"].startswith("2025-03-01")
    response = api_client.delete(f"/api/v1/customers/bad-1/events?ids={bad['huge'].pk}")
    assert response.status_code == 200
    assert [r["id"] for r in api_client.get("/api/v1/customers/bad-1/events").json()] == [bad["good"].pk]


def test_a_year_one_row_is_found_and_deleted_postgres(client, store, merchant, api_client, bad):
    year_one = add_year_one(store, bad)
    client.force_login(merchant)
    response = client.get(page(store, "customer_detail", bad["customer"]))
    assert response.status_code == 200
    found = {e.pk: e for e in response.context["bad_events"]}
    assert set(found) == {year_one, bad["huge"].pk}
    assert found[year_one].timestamp is None and "BC" in found[year_one].timestamp_text

    rows = {r["id"]: r for r in api_client.get("/api/v1/customers/bad-1/events").json()}
    assert rows[year_one]["timestamp"] is None and rows[year_one]["readable"] is False

    confirm = client.get(page(store, "delete_customer_events", bad["customer"]), {"ids": [year_one]})
    assert confirm.status_code == 200 and "BC" in confirm.content.decode()
    client.post(page(store, "delete_customer_events", bad["customer"]), {"ids": [year_one], "confirm": "yes"})
    assert api_client.delete(f"/api/v1/customers/bad-1/events?ids={bad['huge'].pk}").status_code == 200
    with unscoped():
        assert list(Event.objects.filter(customer=bad["customer"]).values_list("pk", flat=True)) == [bad["good"].pk]
    assert client.get(page(store, "customer_detail", bad["customer"])).context["bad_events"] == []
