"""Small promises of ``shop_recs.ads.services`` that the serving tests reach only indirectly: the
change record's values, the scope the raw SQL must name, JSON lists from either driver, the
defaults of ``serve_ads`` and the charge a served impression reports (mutation-testing gaps of the
money rewrite, docs/benchmarks.md § Mutation testing)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django_scopes import scope, scopes_disabled
from django_scopes.exceptions import ScopeError

from shop_recs.ads import services
from shop_recs.ads.models import Campaign
from shop_recs.stores.scoping import store_scope

pytestmark = pytest.mark.django_db


def test_campaign_values_are_the_shopper_facing_fields_in_plain_text(store, make_campaign, make_product):
    starts, ends = datetime(2026, 1, 2, 3, 4, tzinfo=UTC), datetime(2026, 2, 3, 4, 5, tzinfo=UTC)
    mug = make_product(store, "MUG-1")
    campaign = make_campaign(
        store,
        "Spring",
        products=[mug],
        title="Spring mugs",
        image_url="https://cdn.example/a.png",
        landing_url="https://shop.example/spring",
        starts_at=starts,
        ends_at=ends,
        pricing_model="cpc",
        bid=Decimal("0.5"),
        budget=Decimal("250"),
        daily_budget=None,
        frequency_cap=3,
        weight=1.5,
    )
    with store_scope(store):
        values = services.campaign_values(campaign)
    assert values == {
        "status": "active",
        "title": "Spring mugs",
        "image_url": "https://cdn.example/a.png",
        "landing_url": "https://shop.example/spring",
        "starts_at": starts.isoformat(),
        "ends_at": ends.isoformat(),
        "pricing_model": "cpc",
        "bid": "0.50",
        "budget": "250.00",
        "daily_budget": None,
        "frequency_cap": 3,
        "weight": 1.5,
        "products": [mug.pk],
        "categories": [],
        "segments": [],
    }
    campaign.daily_budget = Decimal("12.3")
    with store_scope(store):
        assert services.campaign_values(campaign)["daily_budget"] == "12.30"


def test_an_unsaved_campaign_has_no_relations_in_its_values(store):
    unsaved = Campaign(store=store, name="draft", title="t", landing_url="https://x.example/", bid=1, budget=5)
    values = services.campaign_values(unsaved)
    assert "products" not in values and values["starts_at"] is None and values["bid"] == "1.00"


def test_raw_sql_needs_exactly_one_active_store_scope(store, other_store):
    with store_scope(store):
        assert services._scoped_store_id() == store.pk
    with scope(store=store.pk):
        assert services._scoped_store_id() == store.pk
    with pytest.raises(ScopeError, match="single-store scope"):
        services._scoped_store_id()
    with scope(store=[store, other_store]), pytest.raises(ScopeError):
        services._scoped_store_id()
    with scope(store=store), scopes_disabled(), pytest.raises(ScopeError):
        services._scoped_store_id()


@pytest.mark.parametrize(
    ("raw", "expected"), [("[3, 1]", [3, 1]), ("", []), (None, []), ([2], [2]), ((4, 5), [4, 5]), ("[]", [])]
)
def test_json_lists_come_back_as_lists_from_text_or_decoded(raw, expected):
    assert services._json_list(raw) == expected


def test_serve_ads_defaults_to_one_ad_and_an_empty_slot(store, shop, make_campaign):
    for name in ("a", "b", "c"):
        make_campaign(store, name)
    with store_scope(store):
        result = services.serve_ads(store, None)
    assert result.slot == "" and len(result.ads) == 1 and result.customer_known is False


def test_a_served_cpm_impression_reports_what_it_cost(store, shop, make_campaign):
    make_campaign(store, "cpm", pricing_model="cpm", bid=Decimal("2.00"), budget=Decimal("10"))
    now = datetime.now(UTC)
    with store_scope(store):
        spec = services.running_campaigns(store.pk, now)[0]
        served = services.record_impression(store, spec, None, slot="home", score=1.0, now=now)
    assert served is not None and served.cost_micros == 2_000  # 2.00 per thousand = 0.002 each
