"""Campaign pages: permissions (analysts read, merchants write), validation, isolation, charts."""

from __future__ import annotations

from datetime import date

import pytest

from shop_recs.ads import charts
from shop_recs.ads.models import Campaign, Impression
from shop_recs.stores.models import Role
from shop_recs.stores.scoping import unscoped

pytestmark = pytest.mark.django_db


def form_data(**over):
    data = {
        "name": "Spring",
        "title": "Spring sale",
        "image_url": "https://img.example/s.png",
        "landing_url": "https://shop.example/spring",
        "skus": "P1",
        "starts_at": "2030-03-01T00:00",
        "ends_at": "2030-03-31T00:00",
        "pricing_model": "cpc",
        "bid": "0.50",
        "budget": "500.00",
        "daily_budget": "",
        "frequency_cap": "3",
        "weight": "1.5",
        "status": "active",
        "attribution_basis": "click",
        "attribution_window_days": "",
        "confirm_live": "on",
    }
    data.update(over)
    return data


@pytest.fixture
def products(store, other_store, make_product):
    return make_product(store, "P1"), make_product(other_store, "B1")


def test_merchant_creates_edits_and_pauses(login, merchant, store, products):
    client = login(merchant)
    assert client.get("/s/alpha/ads/new/").status_code == 200
    r = client.post("/s/alpha/ads/new/", form_data())
    assert r.status_code == 302, r.content.decode()[:2000]
    with unscoped():
        c = Campaign.objects.get(name="Spring")
        assert c.store == store and c.created_by == merchant and [p.sku for p in c.products.all()] == ["P1"]
    assert client.post(f"/s/alpha/ads/{c.pk}/edit/", form_data(name="Spring 2")).status_code == 302
    assert client.post(f"/s/alpha/ads/{c.pk}/status/", {"status": "paused"}).status_code == 302
    c.refresh_from_db()
    assert c.name == "Spring 2" and c.status == "paused"


def test_validation_errors(login, merchant, store, products):
    client = login(merchant)
    cases = [
        (form_data(ends_at="2030-02-01T00:00"), "ends_at", "after the start"),
        (form_data(budget="0"), "budget", "greater than 0"),
        (form_data(skus="B1"), "skus", "No product with SKU B1"),  # store beta's product
        (form_data(weight="0"), "weight", "greater than 0"),
    ]
    for data, field, text in cases:
        r = client.post("/s/alpha/ads/new/", data)
        assert r.status_code == 200
        errors = r.context["form"].errors
        assert field in errors and text in " ".join(errors[field]), (field, errors)
    with unscoped():
        assert not Campaign.objects.exists()


def test_other_stores_segments_and_categories_are_not_choices(login, merchant, store, other_store, products):
    from analytics.models import Segment
    from shop_recs.catalog.models import Category

    with unscoped():
        seg = Segment.objects.create(store=other_store, name="beta seg", kind="rule")
        cat = Category.objects.create(store=other_store, name="beta cat", path="Beta")
    client = login(merchant)
    r = client.post("/s/alpha/ads/new/", form_data(segments=[seg.pk], categories=[cat.pk]))
    assert r.status_code == 200
    assert {"segments", "categories"} <= set(r.context["form"].errors)


def test_analyst_reads_but_cannot_write(login, analyst, store, products, make_campaign):
    c = make_campaign(store, "Existing", products=[products[0]])
    client = login(analyst)
    assert client.get("/s/alpha/ads/").status_code == 200
    assert client.get(f"/s/alpha/ads/{c.pk}/").status_code == 200
    assert client.get("/s/alpha/ads/new/").status_code == 403
    assert client.post("/s/alpha/ads/new/", form_data()).status_code == 403
    assert client.post(f"/s/alpha/ads/{c.pk}/edit/", form_data()).status_code == 403
    assert client.post(f"/s/alpha/ads/{c.pk}/status/", {"status": "paused"}).status_code == 403
    c.refresh_from_db()
    assert c.status == "active" and c.name == "Existing"
    assert "New campaign" not in client.get("/s/alpha/ads/").content.decode()


def test_report_and_list_show_numbers(login, analyst, store, products, make_campaign, make_customer):
    c = make_campaign(store, "Shown", products=[products[0]])
    cust = make_customer(store, "x")
    with unscoped():
        Impression.objects.create(store=store, campaign=c, customer=cust)
        Impression.objects.create(store=store, campaign=c, customer=cust)
        Impression.objects.create(store=store, campaign=c, customer=None)
        Impression.objects.filter(pk=Impression.objects.first().pk).update(clicked_at=c.starts_at)
    client = login(analyst)
    r = client.get(f"/s/alpha/ads/{c.pk}/")
    report = r.context["report"]
    assert (report["impressions"], report["reach"], report["clicks"]) == (3, 1, 1)
    assert abs(report["ctr"] - 1 / 3) < 1e-9
    html = r.content.decode()
    # Three impressions on one day are below the charts' threshold (tests/ads/test_money.py draws them).
    assert 'id="not-enough-data"' in html and 'data-figure="fig-daily"' not in html
    rows = client.get("/s/alpha/ads/").context["rows"]
    assert rows[0]["impressions"] == 3 and rows[0]["clicks"] == 1


def test_store_isolation_of_pages(login, make_user, store, other_store, products, make_campaign):
    c = make_campaign(store, "Alpha only", products=[products[0]])
    beta_member = make_user("beta-merchant", other_store, Role.MERCHANT)
    client = login(beta_member)
    for url in ("/s/alpha/ads/", f"/s/alpha/ads/{c.pk}/", f"/s/alpha/ads/{c.pk}/edit/"):
        assert client.get(url).status_code == 404, url
    # Through beta's own URL prefix the alpha campaign does not exist either.
    for url in (f"/s/beta/ads/{c.pk}/", f"/s/beta/ads/{c.pk}/edit/"):
        assert client.get(url).status_code == 404, url
    assert client.post(f"/s/beta/ads/{c.pk}/status/", {"status": "paused"}).status_code == 404
    assert "Alpha only" not in client.get("/s/beta/ads/").content.decode()
    c.refresh_from_db()
    assert c.status == "active"


def test_store_isolation_of_api(api_client, other_api_client, store, products, make_campaign, make_customer):
    make_customer(store, "shared-id")
    make_campaign(store, "Alpha ad", title="alpha", products=[products[0]])
    assert other_api_client.get("/api/v1/ads?customer=shared-id").json()["ads"] == []
    ad = api_client.get("/api/v1/ads?customer=shared-id").json()["ads"][0]
    url = f"/api/v1/ads/impressions/{ad['impression_id']}/click"
    assert other_api_client.post(url).status_code == 404
    with unscoped():
        assert Impression.objects.get(impression_id=ad["impression_id"]).clicked_at is None
    assert api_client.post(url).status_code == 200


def test_charts_are_pure_functions():
    days = [date(2025, 1, 1), date(2025, 1, 2)]
    fig = charts.daily_performance_figure(
        days,
        {"impressions": [3, 4], "clicks": [1, 0], "conversions": [0, 1]},
        {"impressions": "Impressions", "clicks": "Clicks", "conversions": "Conversions"},
    )
    assert [t.name for t in fig.data] == ["Impressions", "Clicks", "Conversions"]
    fig = charts.pacing_figure(days, [3, 7], 10, {"served": "Served", "even": "Even"})
    assert list(fig.data[1].y) == [5.0, 10.0]


def test_going_live_needs_a_confirmation_and_is_recorded(client, merchant, store, products):
    """Making a campaign active changes what shoppers see: the form and the status button ask first."""
    from shop_recs.ads.models import Campaign
    from shop_recs.serving.models import ShopperFacingChange
    from shop_recs.stores.scoping import store_scope

    client.force_login(merchant)
    refused = client.post("/s/alpha/ads/new/", form_data(confirm_live=""))
    assert refused.status_code == 200 and "confirm_live" in refused.context["form"].errors
    assert client.post("/s/alpha/ads/new/", form_data(status="paused", confirm_live="")).status_code == 302
    with store_scope(store):
        campaign = Campaign.objects.get()
    status_url = f"/s/alpha/ads/{campaign.pk}/status/"
    client.post(status_url, {"status": "active"})
    campaign.refresh_from_db()
    assert campaign.status == "paused"
    client.post(status_url, {"status": "active", "confirm": "yes"})
    campaign.refresh_from_db()
    assert campaign.status == "active"
    with store_scope(store):
        change = ShopperFacingChange.objects.get(kind="campaign")
    assert change.user == merchant and change.details == {"status": ["paused", "active"]}
