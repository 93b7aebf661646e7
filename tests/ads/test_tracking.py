"""Clicks (idempotent), attribution windows, and budget/caps under real concurrency (Postgres)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from shop_recs.activity.models import Event
from shop_recs.ads import selectors, services
from shop_recs.ads.models import AttributionBasis, Campaign, DailyCap, Impression
from shop_recs.stores.scoping import store_scope, unscoped
from tests.conftest import require_postgres
from tests.threads import run_in_threads

T = datetime(2025, 1, 10, 12, 0, tzinfo=UTC)


def _impression(store, campaign, customer, *, at=T, clicked=None) -> Impression:
    with unscoped():
        return Impression.objects.create(
            store=store, campaign=campaign, customer=customer, served_at=at, clicked_at=clicked
        )


def _purchase(store, customer, product, at, *, value=10.0, qty=1, context=None) -> Event:
    return Event.all_stores.create(
        store=store,
        customer=customer,
        product=product,
        event_type="purchase",
        value=value,
        quantity=qty,
        timestamp=at,
        context=context,
    )


@pytest.mark.django_db
def test_click_is_idempotent(api_client, store, make_customer, make_product, make_campaign):
    c = make_campaign(store, "A", products=[make_product(store, "P1")])
    imp = _impression(store, c, make_customer(store, "x"))
    url = f"/api/v1/ads/impressions/{imp.impression_id}/click"
    r1, r2 = api_client.post(url), api_client.post(url)
    assert r1.status_code == 200 and r1.json()["counted"] is True
    assert r2.status_code == 200 and r2.json()["counted"] is False
    imp.refresh_from_db()
    first = imp.clicked_at
    assert first is not None
    api_client.post(url)
    imp.refresh_from_db()
    assert imp.clicked_at == first
    with unscoped():
        assert Impression.objects.filter(campaign=c, clicked_at__isnull=False).count() == 1
    assert api_client.post(f"/api/v1/ads/impressions/{uuid.uuid4()}/click").status_code == 404


@pytest.mark.django_db
def test_attribution_window_customer_and_product(store, make_customer, make_product, make_campaign):
    p, other_p = make_product(store, "P1"), make_product(store, "P2")
    alice, bob = make_customer(store, "alice"), make_customer(store, "bob")
    c = make_campaign(store, "A", products=[p], starts_at=T - timedelta(days=1), ends_at=T + timedelta(days=30))
    imp = _impression(store, c, alice, clicked=T + timedelta(minutes=1))
    _impression(store, c, bob)  # bob saw it but never clicked
    inside = _purchase(store, alice, p, T + timedelta(days=6), value=5.0, qty=3)
    _purchase(store, alice, p, T + timedelta(days=8))  # outside the 7-day window
    _purchase(store, alice, p, T - timedelta(hours=1))  # before the click
    _purchase(store, bob, p, T + timedelta(days=1))  # bob never clicked (click basis)
    _purchase(store, alice, other_p, T + timedelta(days=1))  # not a promoted product
    with store_scope(store):
        conv = selectors.attributed_conversions(c, until=T + timedelta(days=60))
    assert [(x.event_id, x.impression_id, x.revenue, x.via) for x in conv] == [
        (inside.pk, str(imp.impression_id), 15.0, "click")
    ]
    # A longer window per campaign catches the day-8 purchase too.
    c.attribution_window_days = 10
    c.save()
    with store_scope(store):
        assert len(selectors.attributed_conversions(c, until=T + timedelta(days=60))) == 2


@pytest.mark.django_db
def test_impression_basis_and_store_default_window(settings, store, make_customer, make_product, make_campaign):
    settings.ADS_ATTRIBUTION_WINDOW_DAYS = 2
    p = make_product(store, "P1")
    bob = make_customer(store, "bob")
    c = make_campaign(
        store, "A", products=[p], attribution_basis=AttributionBasis.IMPRESSION, starts_at=T - timedelta(days=1)
    )
    _impression(store, c, bob)
    counted = _purchase(store, bob, p, T + timedelta(days=1))
    _purchase(store, bob, p, T + timedelta(days=3))
    with store_scope(store):
        conv = selectors.attributed_conversions(c, until=T + timedelta(days=60))
    assert [(x.event_id, x.via) for x in conv] == [(counted.pk, "impression")]


@pytest.mark.django_db
def test_context_impression_id_attributes_any_product(store, make_customer, make_product, make_campaign):
    p, other_p = make_product(store, "P1"), make_product(store, "P2")
    alice = make_customer(store, "alice")
    c = make_campaign(store, "A", products=[p], starts_at=T - timedelta(days=1))
    imp = _impression(store, c, alice)  # never clicked
    e = _purchase(store, alice, other_p, T + timedelta(days=20), context={"ad_impression_id": str(imp.impression_id)})
    _purchase(store, alice, other_p, T + timedelta(days=1), context={"ad_impression_id": str(uuid.uuid4())})
    with store_scope(store):
        conv = selectors.attributed_conversions(c, until=T + timedelta(days=60))
        report = selectors.campaign_report(c, now=T + timedelta(days=60))
    assert [(x.event_id, x.via) for x in conv] == [(e.pk, "context")]
    assert report["conversions"] == 1 and report["revenue"] == 10.0 and report["impressions"] == 1


# --- real concurrency (Postgres) ------------------------------------------------------------------


def _hammer(store, fn, threads: int, per_thread: int) -> list:
    """``fn(i, j)`` ``per_thread`` times in each of ``threads`` threads (own connections); any
    thread's exception fails the test (``tests.threads``)."""

    def worker(i: int) -> list:
        with store_scope(store):
            return [fn(i, j) for j in range(per_thread)]

    return [out for chunk in run_in_threads(worker, threads) for out in chunk]


def _spend(campaign) -> tuple[int, int, int, int]:
    """(campaign spend, sum of impression costs, impressions, impressions charged) in micro-units."""
    with unscoped():
        row = Campaign.objects.get(pk=campaign.pk)
        imps = Impression.objects.filter(campaign=campaign)
        costs = sum(imps.values_list("cost_micros", flat=True))
        return row.spend_micros, costs, imps.count(), imps.filter(cost_micros__gt=0).count()


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_never_overrun_the_budget(store, make_customer, make_product, make_campaign):
    """CPM 10.00 = 0.01 per impression; a budget of 0.25 pays for exactly 25 impressions, under 8 threads."""
    require_postgres()
    p = make_product(store, "P1")
    customers = [make_customer(store, f"c{i}") for i in range(8)]
    c = make_campaign(store, "Hot", products=[p], bid=Decimal("10.00"), budget=Decimal("0.25"), frequency_cap=1000)

    def one(i: int, j: int) -> int:
        return len(services.serve_ads(store, customers[i].external_id if j % 2 else None).ads)

    results = _hammer(store, one, threads=8, per_thread=10)
    c.refresh_from_db()
    assert sum(results) == 25 and c.impressions_served == 25
    assert _spend(c) == (250_000, 250_000, 25, 25)
    assert c.spend == Decimal("0.25") and c.remaining == 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_spend_stops_below_a_budget_that_is_not_a_multiple(store, make_product, make_campaign):
    """CPM 3.00 (0.003 per impression) on 0.10: 33 impressions (0.099), never a 34th that would pass 0.10."""
    require_postgres()
    c = make_campaign(store, "Odd", products=[make_product(store, "P1")], bid=Decimal("3.00"), budget=Decimal("0.10"))
    results = _hammer(store, lambda i, j: len(services.serve_ads(store, None).ads), threads=8, per_thread=6)
    assert sum(results) == 33
    assert _spend(c) == (99_000, 99_000, 33, 33)


@pytest.mark.django_db(transaction=True)
def test_concurrent_clicks_are_charged_once_and_never_past_the_budget(store, make_product, make_campaign):
    """CPC 0.50 on a 2.00 budget: 12 impressions are served free; 8 threads click every one twice; exactly
    four first clicks are charged (2.00), repeats and clicks past the budget are free, none is lost."""
    require_postgres()
    c = make_campaign(
        store,
        "Clicky",
        products=[make_product(store, "P1")],
        pricing_model="cpc",
        bid=Decimal("0.50"),
        budget=Decimal("2.00"),
    )
    with store_scope(store):
        ids = [services.serve_ads(store, None).ads[0]["impression_id"] for _ in range(12)]
    assert _spend(c) == (0, 0, 12, 0)  # a CPC impression costs nothing

    def click(i: int, j: int) -> tuple[bool, bool]:
        return services.record_click(uuid.UUID(ids[(i * 3 + j) % 12]), store_id=store.pk)

    results = _hammer(store, click, threads=8, per_thread=3)  # 24 clicks: each impression twice
    assert all(found for found, _ in results)
    assert sum(first for _, first in results) == 12
    assert _spend(c) == (2_000_000, 2_000_000, 12, 4)
    with unscoped():
        assert Impression.objects.filter(campaign=c, clicked_at__isnull=True).count() == 0
    # A click on an impression that does not exist (or is another store's) is not charged.
    with store_scope(store):
        assert services.record_click(uuid.uuid4()) == (False, False)
    assert _spend(c)[0] == 2_000_000


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_never_pass_the_paced_daily_budget(store, make_product, make_campaign):
    """Frozen at 12:00 UTC with 5 % tolerance, a 0.10 daily budget allows 0.055 by now: 5 impressions at 0.01."""
    require_postgres()
    noon = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
    c = make_campaign(
        store,
        "Paced",
        products=[make_product(store, "P1")],
        budget=Decimal("50.00"),
        daily_budget=Decimal("0.10"),
        starts_at=noon - timedelta(days=1),
        ends_at=noon + timedelta(days=1),
    )
    results = _hammer(store, lambda i, j: len(services.serve_ads(store, None, now=noon).ads), threads=8, per_thread=4)
    assert sum(results) == 5
    assert _spend(c) == (50_000, 50_000, 5, 5)
    with unscoped():
        row = Campaign.objects.get(pk=c.pk)
    assert (row.spend_day, row.day_spend_micros) == (noon.date(), 50_000)


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_respect_the_frequency_cap(store, make_customer, make_product, make_campaign):
    require_postgres()
    p = make_product(store, "P1")
    make_customer(store, "same")
    c = make_campaign(store, "Capped", products=[p], budget=1000, frequency_cap=3)
    results = _hammer(store, lambda i, j: len(services.serve_ads(store, "same").ads), threads=8, per_thread=5)
    c.refresh_from_db()
    with unscoped():
        cap = DailyCap.objects.get(campaign=c)
        rows = Impression.objects.filter(campaign=c).count()
    assert sum(results) == 3 and rows == 3 and cap.count == 3 and c.impressions_served == 3
    assert Campaign.all_stores.get(pk=c.pk).impressions_served == 3
