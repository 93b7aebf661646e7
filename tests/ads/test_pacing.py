"""Pacing: a daily budget is spread over the (UTC) day, with a frozen clock (``now=`` everywhere).

Allowed by time t: daily budget x min(1, elapsed share of the day + ADS_PACING_TOLERANCE). A campaign
that spent more is skipped by eligibility (from the snapshot's counters) and refused by the charging
UPDATE (from the row), until the day catches up; a new day starts from zero.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from shop_recs.ads import eligibility, selectors, services
from shop_recs.ads.eligibility import eligible_campaigns, paced_ppm, running_campaigns
from shop_recs.ads.models import Campaign
from shop_recs.stores.scoping import store_scope, unscoped

pytestmark = pytest.mark.django_db

DAY = datetime(2030, 6, 1, tzinfo=UTC)


def at(hours: float) -> datetime:
    return DAY + timedelta(hours=hours)


def serve_until_refused(store, now: datetime, limit: int = 50) -> int:
    """Ads served at the frozen ``now`` until one request gets none (the snapshot rebuilt first)."""
    eligibility.invalidate_campaigns(store.pk)
    served = 0
    with store_scope(store):
        while served < limit and services.serve_ads(store, None, now=now).ads:
            served += 1
    return served


@pytest.fixture
def paced(store, make_campaign, make_product):
    """CPM 10.00 (0.01 per impression), a 0.10 daily budget (10 impressions a day), a big total."""
    return make_campaign(
        store,
        "Paced",
        products=[make_product(store, "P1")],
        bid=Decimal("10.00"),
        budget=Decimal("100.00"),
        daily_budget=Decimal("0.10"),
        starts_at=DAY - timedelta(days=1),
        ends_at=DAY + timedelta(days=3),
    )


def test_paced_share_of_the_day(settings):
    settings.ADS_PACING_TOLERANCE = 0.05
    assert paced_ppm(at(0), 0.05) == 50_000
    assert paced_ppm(at(6), 0.05) == 300_000
    assert paced_ppm(at(12), 0.05) == 550_000
    assert paced_ppm(at(23), 0.05) == 1_000_000  # capped at the whole daily budget
    assert paced_ppm(at(12), 0.0) == 500_000


def test_spend_follows_the_day_and_resets_the_next_day(store, paced, settings):
    settings.ADS_PACING_TOLERANCE = 0.05
    # 06:00: 30 % of 0.10 = 0.03 -> 3 impressions, then refused.
    assert serve_until_refused(store, at(6)) == 3
    # Still 06:00 a minute later: a fresh snapshot knows today's spend and eligibility skips the
    # campaign without a charge attempt; at 12:00 the same snapshot lets it through again.
    eligibility.invalidate_campaigns(store.pk)
    specs = running_campaigns(store.pk, at(6))
    assert specs[0].day_spend_micros == 30_000 and specs[0].refused_until == 0.0
    assert eligible_campaigns(specs, now=at(6) + timedelta(minutes=1), segment_ids=None) == []
    assert eligible_campaigns(specs, now=at(12), segment_ids=None) == specs
    # 12:00: 55 % -> 0.055 -> 5 in total, i.e. 2 more.
    assert serve_until_refused(store, at(12)) == 2
    # 23:00: the whole daily budget: 10 in total, never an 11th.
    assert serve_until_refused(store, at(23)) == 5
    assert serve_until_refused(store, at(23.99)) == 0
    with unscoped():
        row = Campaign.objects.get(pk=paced.pk)
    assert (row.spend_day, row.day_spend_micros, row.spend_micros) == (DAY.date(), 100_000, 100_000)
    # The next day starts from zero: 00:30 allows 7.1 % of 0.10, less than one impression; 06:00 three.
    assert serve_until_refused(store, at(24.5)) == 0
    assert serve_until_refused(store, at(30)) == 3
    with unscoped():
        row = Campaign.objects.get(pk=paced.pk)
    assert (row.spend_day, row.day_spend_micros, row.spend_micros) == (
        (DAY + timedelta(days=1)).date(),
        30_000,
        130_000,
    )


def test_no_tolerance_means_nothing_at_midnight(store, paced, settings):
    settings.ADS_PACING_TOLERANCE = 0.0
    assert serve_until_refused(store, at(0)) == 0
    assert serve_until_refused(store, at(2.4)) == 1  # 10 % of the day: 0.01


def test_campaign_without_daily_budget_is_not_paced(store, make_campaign, make_product, settings):
    settings.ADS_PACING_TOLERANCE = 0.0
    make_campaign(
        store,
        "Unpaced",
        products=[make_product(store, "P1")],
        budget=Decimal("0.12"),
        starts_at=DAY - timedelta(days=1),
        ends_at=DAY + timedelta(days=1),
    )
    assert serve_until_refused(store, at(0)) == 12  # only the total budget limits it


def test_report_shows_the_pace(store, paced, settings):
    settings.ADS_PACING_TOLERANCE = 0.05
    serve_until_refused(store, at(6))
    with unscoped():
        row = Campaign.objects.get(pk=paced.pk)
    with store_scope(store):
        early = selectors.campaign_report(row, now=at(6))["pacing"]
        later = selectors.campaign_report(row, now=at(18))["pacing"]
    assert early["today_spend"] == Decimal("0.03") and early["paced_allowed"] == Decimal("0.03")
    assert early["over_paced"] is True
    assert later["paced_allowed"] == Decimal("0.08") and later["over_paced"] is False
