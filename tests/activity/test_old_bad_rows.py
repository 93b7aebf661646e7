"""Issue 12 §1: one bad row stored before the validation existed cannot take a page or a job down.

The rows are written straight into the tables (the ORM, or SQL where the ORM cannot even build the
value, as for a timestamp PostgreSQL keeps as 1 BC), the way older data may hold them. Every reader
then skips them: the overview for every period, the customer page, the profile page, the preview,
profile runs (which count what they skipped) and rule-segment creation.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.urls import reverse

from analytics.models import CustomerProfile, ProfileRun, Segment
from analytics.services import build_profiles
from shop_recs.activity.models import Customer, Event
from shop_recs.stores.scoping import store_scope, unscoped
from tests.conftest import require_postgres

pytestmark = pytest.mark.django_db

NOW = datetime.now(UTC).replace(microsecond=0)
PERIODS = ("7", "30", "90", "all")


@pytest.fixture
def shop(store, make_product, make_customer):
    """Two customers with ordinary history: ``good`` buys, ``bad`` gets the bad rows."""
    product = make_product(store, "SKU-1")
    good, bad = make_customer(store, "good"), make_customer(store, "bad")
    with unscoped():
        Event.objects.bulk_create(
            [
                Event(store=store, customer=c, product=product, event_type=t, timestamp=NOW - timedelta(days=d), **kw)
                for c in (good, bad)
                for t, d, kw in (
                    ("view", 3, {}),
                    ("purchase", 2, {"value": 10.0, "quantity": 1, "order_id": f"o-{c.external_id}"}),
                )
            ]
        )
    return {"store": store, "product": product, "good": good, "bad": bad}


def _add(shop, **fields) -> None:
    with unscoped():
        Event.objects.create(store=shop["store"], customer=shop["bad"], product=shop["product"], **fields)


def _add_year_one(shop) -> None:
    """The §1 reproduction: what PostgreSQL made of ``0001-01-01T00:00:00+14:00`` (1 BC)."""
    require_postgres()
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO activity_event (store_id, customer_id, product_id, session_id, event_type, order_id,"
            " query, timestamp, received_at) VALUES (%s, %s, %s, '', 'view', '', '',"
            " '0001-01-01T00:00:00+14:00'::timestamptz, now())",
            [shop["store"].pk, shop["bad"].pk, shop["product"].pk],
        )


def _pages(client, shop, external_id: str = "bad") -> dict[str, str]:
    slug = shop["store"].slug
    pages = {f"overview {p}": reverse("dashboard:overview", args=[slug]) + f"?period={p}" for p in PERIODS}
    pages["customer"] = reverse("dashboard:customer_detail", args=[slug, external_id])
    pages["customers search"] = reverse("dashboard:customers", args=[slug]) + "?q=b"
    pages["product"] = reverse("dashboard:product_detail", args=[slug, "SKU-1"])
    pages["preview"] = reverse("recs:preview", args=[slug]) + f"?customer={external_id}"
    return pages


def _assert_pages_render(client, shop, external_id: str = "bad") -> None:
    for name, url in _pages(client, shop, external_id).items():
        response = client.get(url)
        assert response.status_code == 200, (name, url, response.status_code)


def test_a_year_one_timestamp_breaks_no_page(client, merchant, shop):
    _add_year_one(shop)
    client.force_login(merchant)
    _assert_pages_render(client, shop)


def test_a_year_one_timestamp_is_skipped_and_counted_by_profile_runs(shop):
    _add_year_one(shop)
    run = build_profiles(shop["store"], ProfileRun.Mode.FULL)
    assert run.status == "succeeded", run.error
    assert run.n_events == 4
    with store_scope(shop["store"]):
        assert CustomerProfile.objects.get(customer=shop["bad"]).events == 2


def test_huge_purchase_values_break_no_page(client, merchant, shop):
    _add(shop, event_type="purchase", value=1e300, quantity=2_147_483_647, order_id="big", timestamp=NOW)
    client.force_login(merchant)
    _assert_pages_render(client, shop)


def test_infinite_values_are_skipped_by_profile_runs_and_segments_still_build(client, merchant, shop):
    for order in ("x1", "x2"):
        _add(shop, event_type="purchase", value=1e308, quantity=10, order_id=order, timestamp=NOW - timedelta(hours=1))
    run = build_profiles(shop["store"], ProfileRun.Mode.FULL)
    assert run.status == "succeeded", run.error
    assert run.n_events == 4  # the two 1e308 lines are left out
    assert run.n_skipped_events == 2  # ... and counted in the run's report
    client.force_login(merchant)
    page = client.get(reverse("analytics:segments", args=[shop["store"].slug])).content.decode()
    assert 'id="skipped-events"' in page and "2 unreadable events skipped" in page
    with store_scope(shop["store"]):
        assert CustomerProfile.objects.get(customer=shop["bad"]).monetary == pytest.approx(10.0)
    client.force_login(merchant)
    rules = {"all": [{"field": "monetary", "op": ">", "value": 5}]}
    url = reverse("analytics:segment_new", args=[shop["store"].slug])
    response = client.post(url, {"name": "Spenders", "rules": json.dumps(rules)})
    assert response.status_code == 302
    with store_scope(shop["store"]):
        assert Segment.objects.get(name="Spenders").size == 2


def test_profiles_left_infinite_by_older_runs_do_not_break_rule_segments(client, merchant, shop):
    build_profiles(shop["store"], ProfileRun.Mode.FULL)
    with unscoped():
        CustomerProfile.objects.filter(customer=shop["bad"]).update(monetary=float("inf"), lifetime_value=float("inf"))
    client.force_login(merchant)
    rules = {"all": [{"field": "monetary", "op": ">", "value": 5}]}
    response = client.post(
        reverse("analytics:segment_new", args=[shop["store"].slug]), {"name": "Big", "rules": json.dumps(rules)}
    )
    assert response.status_code == 302
    with store_scope(shop["store"]):
        assert Segment.objects.get(name="Big").size >= 1


def test_an_id_with_a_slash_breaks_no_page(client, merchant, shop):
    with unscoped():
        Customer.objects.filter(pk=shop["bad"].pk).update(external_id="a/b")
    client.force_login(merchant)
    _assert_pages_render(client, shop, "a/b")
    response = client.get(reverse("dashboard:customer_detail", args=[shop["store"].slug, "a/b"]))
    assert "a/b" in response.content.decode()
