"""Ad serving: eligibility (segments, dates, status, budget, caps), anonymous visitors, ranking."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from shop_recs.ads import services
from shop_recs.ads.models import Campaign, CampaignStatus, Impression
from shop_recs.stores.scoping import store_scope, unscoped

pytestmark = pytest.mark.django_db
URL = "/api/v1/ads"


def served(client, customer: str | None = None, n: int = 5, slot: str = "home") -> list[str]:
    q = f"?n={n}&slot={slot}" + (f"&customer={customer}" if customer else "")
    r = client.get(URL + q)
    assert r.status_code == 200, r.content
    return [a["title"] for a in r.json()["ads"]]


@pytest.fixture
def mugs(shop):
    return [shop["products"][f"M{i}"] for i in range(4)]


@pytest.fixture
def shirts(shop):
    return [shop["products"][f"S{i}"] for i in range(4)]


def test_segment_targeting_and_untargeted(api_client, store, shop, mugs, make_campaign, make_segment):
    c0 = shop["customers"][0]
    seg = make_segment(store, "Mug lovers", [c0])
    make_campaign(store, "T", title="targeted", products=mugs, segments=[seg])
    make_campaign(store, "U", title="untargeted", products=mugs)
    assert set(served(api_client, "C0")) == {"targeted", "untargeted"}
    assert served(api_client, "C1") == ["untargeted"]


def test_anonymous_and_unknown_get_untargeted_only(api_client, store, shop, mugs, make_campaign, make_segment):
    seg = make_segment(store, "Everyone known", shop["customers"])
    make_campaign(store, "T", title="targeted", products=mugs, segments=[seg])
    make_campaign(store, "U", title="untargeted", products=mugs)
    assert served(api_client, None) == ["untargeted"]
    assert served(api_client, "NOBODY") == ["untargeted"]
    body = api_client.get(f"{URL}?customer=NOBODY").json()
    assert body["customer_known"] is False and body["slot"] == ""


def test_dates(api_client, store, shop, mugs, make_campaign):
    now = timezone.now()
    make_campaign(store, "F", title="future", products=mugs, starts_at=now + timedelta(days=1))
    make_campaign(
        store, "P", title="past", products=mugs, starts_at=now - timedelta(days=5), ends_at=now - timedelta(hours=1)
    )
    make_campaign(store, "N", title="now", products=mugs)
    assert served(api_client, "C0") == ["now"]


@pytest.mark.parametrize("status", [CampaignStatus.DRAFT, CampaignStatus.PAUSED, CampaignStatus.ENDED])
def test_status(api_client, store, shop, mugs, make_campaign, status):
    c = make_campaign(store, "X", title="x", products=mugs, status=status)
    assert served(api_client, "C0") == []
    c.status = CampaignStatus.ACTIVE
    c.save()  # the save signal refreshes the worker's campaign table
    assert served(api_client, "C0") == ["x"]


def test_budget(api_client, store, shop, mugs, make_campaign):
    c = make_campaign(store, "B", title="b", products=mugs, budget=Decimal("0.02"))  # 2 impressions at CPM 10.00
    assert served(api_client, "C0") == ["b"]
    assert served(api_client, None) == ["b"]
    assert served(api_client, "C2") == []  # spent, although the cached table still says 0 served
    c.refresh_from_db()
    assert c.impressions_served == 2
    with unscoped():
        assert Impression.objects.filter(campaign=c).count() == 2


def test_frequency_cap_per_customer_per_day(api_client, store, shop, mugs, make_campaign):
    c = make_campaign(store, "C", title="c", products=mugs, frequency_cap=2)
    assert served(api_client, "C0") == ["c"]
    assert served(api_client, "C0") == ["c"]
    assert served(api_client, "C0") == []
    assert served(api_client, "C1") == ["c"]  # another customer is not capped
    tomorrow = timezone.now() + timedelta(days=1)
    with store_scope(store):
        result = services.serve_ads(store, "C0", now=tomorrow)
    assert [a["campaign_id"] for a in result.ads] == [c.pk]


def test_ranking_by_predicted_affinity(api_client, store, shop, mugs, shirts, make_campaign):
    make_campaign(store, "Mugs", title="mugs", products=mugs[:2])
    make_campaign(store, "Shirts", title="shirts", products=shirts[:2])
    # C0 is a mug person, C1 a shirt person (see the serving shop fixture).
    assert served(api_client, "C0", n=2) == ["mugs", "shirts"]
    assert served(api_client, "C1", n=2) == ["shirts", "mugs"]
    assert served(api_client, "C1", n=1) == ["shirts"]


def test_ranking_by_category_promotion_and_weight(api_client, store, shop, make_campaign):
    cats = shop["categories"]
    make_campaign(store, "Mugs", title="mugs", categories=[cats["mugs"]])
    shirts = make_campaign(store, "Shirts", title="shirts", categories=[cats["shirts"]])
    assert served(api_client, "C0", n=2)[0] == "mugs"
    shirts.weight = 50
    shirts.save()
    assert served(api_client, "C0", n=2)[0] == "shirts"


def test_response_shape_and_impression_row(api_client, store, shop, mugs, make_campaign):
    c = make_campaign(store, "S", title="s", products=mugs, image_url="https://img.example/a.png")
    body = api_client.get(f"{URL}?customer=C0&slot=sidebar").json()
    ad = body["ads"][0]
    assert set(ad) == {"impression_id", "campaign_id", "title", "image_url", "landing_url", "score", "products"}
    with unscoped():
        imp = Impression.objects.get(impression_id=ad["impression_id"])
    assert imp.campaign_id == c.pk and imp.slot == "sidebar" and imp.customer_id == shop["customers"][0].pk


def test_bad_input(api_client, shop):
    for q in ("n=0", "n=11", "n=x"):
        r = api_client.get(f"{URL}?{q}")
        assert r.status_code == 400 and r.json()["error"]["details"][0]["field"] == "n"


def test_requires_api_key(client, shop):
    response = client.get(URL)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    response = client.get(URL, HTTP_AUTHORIZATION="Bearer sr_deadbeef_wrongsecret")
    assert response.status_code == 401
    assert response.json()["error"] == {"code": "authentication_failed", "message": "Invalid API key.", "details": None}


def test_schema_documents_the_endpoints(client):
    body = client.get("/api/schema/").content.decode()
    assert "/api/v1/ads" in body and "/api/v1/ads/impressions/{impression_id}/click" in body


def test_model_cannot_overrun_budget_via_stale_cache(store, shop, mugs, make_campaign):
    c = make_campaign(store, "Z", title="z", products=mugs, budget=1)
    with store_scope(store):
        assert services.serve_ads(store, None).ads
        Campaign.objects.filter(pk=c.pk).update(status=CampaignStatus.PAUSED)  # no signal: cache is stale
        make_campaign(store, "Z2", title="z2", products=mugs, budget=1)
        assert [a["title"] for a in services.serve_ads(store, None).ads] == ["z2"]
