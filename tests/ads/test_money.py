"""Money in ads (issue #14): CPM/CPC charging, budgets in the store currency, the form, the report and
the API's product cards. SQLite by default; the PostgreSQL-only cases call ``require_postgres``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from shop_recs.activity.models import Event
from shop_recs.ads import eligibility, selectors, services
from shop_recs.ads.models import Campaign, DailyCap, Impression, PricingModel
from shop_recs.serving.models import ShopperFacingChange
from shop_recs.stores.scoping import store_scope, unscoped
from tests.conftest import require_postgres

pytestmark = pytest.mark.django_db

T = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)  # in the past: the report pages count up to the real now


def _now_window() -> dict:
    """A flight around the real clock, for requests through the API (which serve at ``timezone.now()``)."""
    now = datetime.now(UTC)
    return {"starts_at": now - timedelta(days=1), "ends_at": now + timedelta(days=1)}


def _serve(store, customer=None, *, now=T, n=1) -> list[dict]:
    with store_scope(store):
        return services.serve_ads(store, customer, now=now, n=n).ads


def _row(campaign) -> Campaign:
    with unscoped():
        return Campaign.objects.get(pk=campaign.pk)


def _costs(campaign) -> list[int]:
    with unscoped():
        return list(
            Impression.objects.filter(campaign=campaign)
            .order_by("served_at", "pk")
            .values_list("cost_micros", flat=True)
        )


@pytest.fixture
def flight(make_campaign, make_product, store):
    """A campaign factory whose flight contains ``T``."""

    def _make(name="Ad", **kwargs):
        kwargs.setdefault("products", [make_product(store, f"P-{name}", price=Decimal("12.5"))])
        kwargs.setdefault("starts_at", T - timedelta(days=2))
        kwargs.setdefault("ends_at", T + timedelta(days=5))
        return make_campaign(store, name, title=name, **kwargs)

    return _make


# --- charging --------------------------------------------------------------------------------------


def test_cpm_charges_bid_over_1000_per_impression_exactly(store, flight):
    c = flight(bid=Decimal("2.50"), budget=Decimal("1.00"))
    for _ in range(3):
        assert _serve(store)
    row = _row(c)
    assert row.spend_micros == 7_500 and row.spend == Decimal("0.0075") and row.impressions_served == 3
    assert _costs(c) == [2_500, 2_500, 2_500]
    # A click on a CPM ad is free: the impression was the billable event.
    imp = _serve(store)[0]["impression_id"]
    with store_scope(store):
        assert services.record_click(uuid.UUID(imp), now=T) == (True, True)
    assert _row(c).spend_micros == 10_000


def test_cpc_charges_the_first_click_only_and_never_past_the_budget(store, flight):
    c = flight(pricing_model=PricingModel.CPC, bid=Decimal("0.40"), budget=Decimal("1.00"))
    ids = [_serve(store)[0]["impression_id"] for _ in range(3)]
    assert _row(c).spend_micros == 0 and _costs(c) == [0, 0, 0]  # impressions are free
    with store_scope(store):
        assert services.record_click(uuid.UUID(ids[0]), now=T) == (True, True)
        assert services.record_click(uuid.UUID(ids[0]), now=T) == (True, False)  # repeat: not charged
        assert services.record_click(uuid.UUID(ids[1]), now=T) == (True, True)
        # 0.80 spent: a third 0.40 click would pass 1.00; it is recorded, free.
        assert services.record_click(uuid.UUID(ids[2]), now=T) == (True, True)
        assert services.record_click(uuid.uuid4(), now=T) == (False, False)  # no such impression
    assert _row(c).spend_micros == 800_000
    assert sorted(_costs(c)) == [0, 400_000, 400_000]
    # 0.20 left cannot pay for a click: the campaign is no longer served.
    assert _serve(store) == []


def test_click_of_another_store_is_not_found_nor_charged(store, other_store, flight, api_client, other_api_client):
    c = flight(pricing_model=PricingModel.CPC, bid=Decimal("1.00"), budget=Decimal("5.00"), **_now_window())
    ad = api_client.get("/api/v1/ads").json()["ads"][0]
    url = f"/api/v1/ads/impressions/{ad['impression_id']}/click"
    assert other_api_client.post(url).status_code == 404
    assert _row(c).spend_micros == 0
    assert api_client.post(url).json() == {"impression_id": ad["impression_id"], "counted": True}
    assert api_client.post(url).json()["counted"] is False
    assert _row(c).spend_micros == 1_000_000


def test_stale_snapshot_cannot_overspend(store, flight, make_customer):
    """The snapshot says nothing was spent; the row says the budget is gone: the UPDATE refuses, and the
    customer's cap counter is left as it was."""
    cust = make_customer(store, "C1")
    c = flight(budget=Decimal("0.01"))  # one impression at CPM 10.00
    assert _serve(store, "C1")
    with unscoped():
        stale = eligibility.spec_of(Campaign.objects.get(pk=c.pk))
    stale.spend_micros = 0
    with store_scope(store):
        assert services.record_impression(store, stale, cust.pk, slot="", score=1.0, now=T) is None
    assert _row(c).spend_micros == 10_000
    with unscoped():
        assert DailyCap.objects.get(campaign=c).count == 1


@pytest.mark.django_db(transaction=True)
def test_stale_snapshot_on_postgres_takes_the_cap_increment_back(store, flight, make_customer):
    """The one-statement path: the cap row passed, the campaign refused; the increment is taken back."""
    require_postgres()
    cust = make_customer(store, "C1")
    c = flight(budget=Decimal("0.01"))
    assert _serve(store, "C1")
    with unscoped():
        stale = eligibility.spec_of(Campaign.objects.get(pk=c.pk))
    stale.spend_micros = 0
    with store_scope(store):
        assert services.record_impression(store, stale, cust.pk, slot="", score=1.0, now=T) is None
    with unscoped():
        assert DailyCap.objects.get(campaign=c).count == 1
        assert Impression.objects.filter(campaign=c).count() == 1
    assert _row(c).spend_micros == 10_000


# --- the API's product cards -----------------------------------------------------------------------


def test_ads_response_carries_product_cards(store, api_client, make_product, flight):
    mug = make_product(
        store,
        "MUG-1",
        price=Decimal("12.5"),
        image_url="https://cdn.example/mug.jpg",
        url="https://shop.example/p/mug-1",
        in_stock=False,
    )
    flight(products=[mug], image_url="https://cdn.example/banner.png", **_now_window())
    ad = api_client.get("/api/v1/ads?slot=home").json()["ads"][0]
    assert ad["image_url"] == "https://cdn.example/banner.png"  # the creative
    card = ad["products"][0]
    assert card == {
        "sku": "MUG-1",
        "title": "Product MUG-1",
        "image_url": "https://cdn.example/mug.jpg",
        "url": "https://shop.example/p/mug-1",
        "price": "12.50",
        "currency": store.currency,
        "in_stock": False,
    }


def test_schema_documents_the_product_card_fields(client):
    body = client.get("/api/schema/").content.decode()
    for name in ("AdProduct", "in_stock", "landing_url"):
        assert name in body


# --- the form -----------------------------------------------------------------------------------------


def _form(**over) -> dict:
    data = {
        "name": "Summer",
        "title": "Summer mugs",
        "image_url": "https://img.example/summer.png",
        "landing_url": "https://shop.example/summer",
        "skus": "P1",
        "starts_at": "2030-06-01T00:00",
        "ends_at": "2030-06-30T00:00",
        "pricing_model": "cpc",
        "bid": "0.35",
        "budget": "500.00",
        "daily_budget": "50.00",
        "frequency_cap": "3",
        "weight": "1",
        "status": "paused",
        "attribution_basis": "click",
        "attribution_window_days": "",
    }
    data.update(over)
    return data


def test_form_saves_money_and_matches_skus_ignoring_case(login, merchant, store, make_product):
    make_product(store, "P1")
    make_product(store, "Mug-2")
    client = login(merchant)
    r = client.post("/s/alpha/ads/new/", _form(skus="p1, MUG-2", budget="500.00"))
    assert r.status_code == 302, r.context["form"].errors if r.context else r
    c = Campaign.all_stores.get(name="Summer")
    assert (c.pricing_model, c.bid, c.budget, c.daily_budget) == (
        "cpc",
        Decimal("0.35"),
        Decimal("500.00"),
        Decimal("50.00"),
    )
    with unscoped():
        assert sorted(c.products.values_list("sku", flat=True)) == ["Mug-2", "P1"]
    page = client.get("/s/alpha/ads/").content.decode()
    assert "$500.00" in page  # the budget, in the store currency (USD)


@pytest.mark.parametrize(
    ("over", "field", "text"),
    [
        ({"budget": "-5"}, "budget", "greater than 0"),
        ({"budget": "1e300"}, "budget", "at most 1,000,000,000"),
        ({"budget": "10.005"}, "budget", "two decimals"),
        ({"budget": "abc"}, "budget", "number"),
        ({"bid": "0"}, "bid", "greater than 0"),
        ({"bid": "1e300"}, "bid", "at most 100,000"),
        ({"bid": "600", "budget": "500"}, "bid", "more than the total budget"),
        ({"bid": "60"}, "bid", "more than the daily budget"),
        ({"daily_budget": "600"}, "daily_budget", "cannot exceed the total budget"),
        ({"skus": "P1 nope OTHER"}, "skus", "No product with SKU nope, OTHER"),
        ({"frequency_cap": "0"}, "frequency_cap", "greater than or equal to 1"),
    ],
)
def test_form_range_checks_name_the_field(login, merchant, store, make_product, over, field, text):
    make_product(store, "P1")
    r = login(merchant).post("/s/alpha/ads/new/", _form(**over))
    assert r.status_code == 200
    errors = r.context["form"].errors
    assert field in errors and text in " ".join(errors[field]), errors
    assert not Campaign.all_stores.exists()


def test_cpm_bid_is_checked_per_impression(login, merchant, store, make_product):
    """A CPM bid is per thousand: 20.00 CPM on a 5.00 budget is fine (250 impressions)."""
    make_product(store, "P1")
    r = login(merchant).post("/s/alpha/ads/new/", _form(pricing_model="cpm", bid="20", budget="5", daily_budget=""))
    assert r.status_code == 302


def test_budget_cannot_go_below_what_was_spent(login, merchant, store, flight):
    c = flight(pricing_model="cpc", bid=Decimal("1.00"), budget=Decimal("10.00"), spend_micros=4_000_000)
    with unscoped():
        sku = c.products.get().sku
    r = login(merchant).post(f"/s/alpha/ads/{c.pk}/edit/", _form(skus=sku, budget="3.00", daily_budget="", bid="1.00"))
    assert "4.00 was already spent" in " ".join(r.context["form"].errors["budget"])


def test_form_page_shows_currency_picker_and_live_preview(login, merchant, store, flight):
    c = flight(image_url="https://img.example/x.png")
    html = login(merchant).get(f"/s/alpha/ads/{c.pk}/edit/").content.decode()
    assert 'id="product-picker"' in html and "data-currency>USD<" in html
    assert 'id="preview-image"' in html and 'src="https://img.example/x.png"' in html
    assert 'alt="Creative image"' in html


def test_saving_an_active_campaign_is_recorded(login, merchant, store, make_product):
    make_product(store, "P1")
    client = login(merchant)
    assert client.post("/s/alpha/ads/new/", _form(status="active", confirm_live="on")).status_code == 302
    c = Campaign.all_stores.get()
    assert client.post(f"/s/alpha/ads/{c.pk}/edit/", _form(status="active", budget="800.00")).status_code == 302
    with store_scope(store):
        changes = list(ShopperFacingChange.objects.filter(kind="campaign").order_by("pk"))
    assert len(changes) == 2
    assert changes[0].details["bid"] == [None, "0.35"]
    assert changes[1].details == {"budget": ["500.00", "800.00"]}


def test_analyst_cannot_create_or_edit(login, analyst, store, flight, make_product):
    make_product(store, "P1")
    c = flight()
    client = login(analyst)
    assert client.post("/s/alpha/ads/new/", _form()).status_code == 403
    assert client.post(f"/s/alpha/ads/{c.pk}/edit/", _form(budget="1")).status_code == 403
    assert _row(c).budget == Decimal("1000")


# --- the report ----------------------------------------------------------------------------------------


def test_report_spend_cpc_cpm_and_roas(login, analyst, store, flight, make_customer):
    """CPC 0.50: 40 impressions over two days, 4 clicks (2.00 spent); one attributed purchase of 3 x 10.00."""
    alice = make_customer(store, "alice")
    c = flight(pricing_model="cpc", bid=Decimal("0.50"), budget=Decimal("100.00"), frequency_cap=1000)
    with unscoped():
        product = c.products.get()
    ids = [
        _serve(store, "alice", now=T - timedelta(days=1) + timedelta(minutes=i))[0]["impression_id"] for i in range(20)
    ]
    ids += [_serve(store, "alice", now=T + timedelta(minutes=i))[0]["impression_id"] for i in range(20)]
    with store_scope(store):
        for imp in ids[:2] + ids[20:22]:
            services.record_click(uuid.UUID(imp), now=T + timedelta(hours=1))
    Event.all_stores.create(
        store=store,
        customer=alice,
        product=product,
        event_type="purchase",
        value=10.0,
        quantity=3,
        timestamp=T + timedelta(hours=2),
    )
    with store_scope(store):
        report = selectors.campaign_report(_row(c), now=T + timedelta(hours=3))
    assert report["spend"] == Decimal("2.00") and report["clicks"] == 4 and report["impressions"] == 40
    assert report["cpc"] == Decimal("0.50") and report["cpm"] == Decimal("50")
    assert report["revenue"] == 30.0 and report["roas"] == Decimal("15")
    assert report["enough_data"] is True
    assert report["series"]["spend"][-1] == 2.0  # CPC spend counts on the day of the click
    html = login(analyst).get(f"/s/alpha/ads/{c.pk}/").content.decode()
    for fig in ("fig-daily", "fig-spend", "fig-pacing"):
        assert f'data-figure="{fig}"' in html
    assert 'data-kpi="roas">15' in html and "$2.00" in html
    rows = login(analyst).get("/s/alpha/ads/").context["rows"]
    assert rows[0]["spend"] == Decimal("2.00") and rows[0]["roas"] == Decimal("15")


def test_creative_image_is_an_img_with_alt_text(login, analyst, store, flight):
    c = flight(image_url="https://cdn.example/banner.png")
    html = login(analyst).get(f"/s/alpha/ads/{c.pk}/").content.decode()
    assert '<img class="ad-creative" src="https://cdn.example/banner.png" alt="Ad"' in html
    assert 'id="not-enough-data"' in html


# --- the migration of impression budgets ---------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_migration_converts_impression_budgets_to_money(store):
    """0003_money + 0004_money_data: budget N impressions -> N x 0.01 at CPM 10.00; served x 0.01 spent;
    the same impressions left."""
    # Inside the test: only this test drives migrations by hand.
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.migrate([("ads", "0002_campaign_status_reason")])
    old = executor.loader.project_state([("ads", "0002_campaign_status_reason")]).apps
    old_campaign = old.get_model("ads", "Campaign")
    old_impression = old.get_model("ads", "Impression")
    try:
        camp = old_campaign.all_stores.create(
            store_id=store.pk,
            name="Legacy",
            title="t",
            landing_url="https://x.example",
            starts_at=T,
            ends_at=T + timedelta(days=3),
            budget=2500,
            impressions_served=40,
        )
        old_impression.all_stores.create(store_id=store.pk, campaign_id=camp.pk)
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
    row = Campaign.all_stores.get(pk=camp.pk)
    assert (row.pricing_model, row.bid, row.budget) == ("cpm", Decimal("10.00"), Decimal("25.00"))
    assert row.spend_micros == 400_000 and row.cost_micros == 10_000
    # Impressions left: exactly what the impression budget had left (2,500 - 40).
    assert (row.budget * 1_000_000 - row.spend_micros) / row.cost_micros == 2460
    assert list(Impression.all_stores.filter(campaign_id=camp.pk).values_list("cost_micros", flat=True)) == [10_000]
