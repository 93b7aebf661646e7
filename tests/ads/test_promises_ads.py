"""Promises of docs/ads.md: last-touch attribution, and campaign expiry by the hourly task."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from shop_recs.activity.models import Event
from shop_recs.ads import selectors
from shop_recs.ads.models import Campaign, CampaignStatus, Impression
from shop_recs.ads.tasks import end_expired_campaigns_task
from shop_recs.stores.scoping import store_scope, unscoped

pytestmark = pytest.mark.django_db
T = datetime(2025, 1, 10, 12, 0, tzinfo=UTC)


def _click(store, campaign, customer, at) -> str:
    with unscoped():
        imp = Impression.objects.create(
            store=store, campaign=campaign, customer=customer, served_at=at - timedelta(minutes=1), clicked_at=at
        )
    return str(imp.impression_id)


def _purchase(store, customer, product, at, value=10.0) -> int:
    return Event.all_stores.create(
        store=store, customer=customer, product=product, event_type="purchase", value=value, quantity=1, timestamp=at
    ).pk


def _conversions(store, campaign) -> dict[int, tuple[str, str]]:
    with store_scope(store):
        conv = selectors.attributed_conversions(campaign, until=T + timedelta(days=60))
    assert len(conv) == len({c.event_id for c in conv})  # each purchase at most once per campaign
    return {c.event_id: (c.impression_id, c.via) for c in conv}


def test_purchase_is_credited_to_the_latest_touch_before_it(store, make_customer, make_product, make_campaign):
    p = make_product(store, "P1")
    alice = make_customer(store, "alice")
    c = make_campaign(store, "A", products=[p], starts_at=T - timedelta(days=1), ends_at=T + timedelta(days=30))
    first = _click(store, c, alice, T)
    second = _click(store, c, alice, T + timedelta(days=3))
    between = _purchase(store, alice, p, T + timedelta(days=2))  # only the first touch precedes it
    after_both = _purchase(store, alice, p, T + timedelta(days=5))  # both precede it: the latest wins
    # 8 days after the first click but 5 after the second: the last touch's window counts.
    late = _purchase(store, alice, p, T + timedelta(days=8))
    too_late = _purchase(store, alice, p, T + timedelta(days=10, hours=1))  # > 7 days after the last touch
    got = _conversions(store, c)
    assert got == {
        between: (first, "click"),
        after_both: (second, "click"),
        late: (second, "click"),
    }
    assert too_late not in got


def test_campaigns_are_credited_independently(store, make_customer, make_product, make_campaign):
    p = make_product(store, "P1")
    alice = make_customer(store, "alice")
    a = make_campaign(store, "A", products=[p], starts_at=T - timedelta(days=1), ends_at=T + timedelta(days=30))
    b = make_campaign(store, "B", products=[p], starts_at=T - timedelta(days=1), ends_at=T + timedelta(days=30))
    touch_a = _click(store, a, alice, T)
    touch_b = _click(store, b, alice, T + timedelta(days=1))
    buy = _purchase(store, alice, p, T + timedelta(days=2))
    # B was the last touch overall, but campaigns are reported independently: both count it.
    assert _conversions(store, a) == {buy: (touch_a, "click")}
    assert _conversions(store, b) == {buy: (touch_b, "click")}


def _campaign_status(store, campaign) -> str:
    with store_scope(store):
        return Campaign.objects.get(pk=campaign.pk).status


def test_end_expired_campaigns_task(store, other_store, make_product, make_campaign):
    now = timezone.now()
    p, q = make_product(store, "P1"), make_product(other_store, "Q1")
    past = {"starts_at": now - timedelta(days=5), "ends_at": now - timedelta(minutes=1)}
    expired_active = make_campaign(store, "EA", products=[p], **past)
    expired_paused = make_campaign(store, "EP", products=[p], status=CampaignStatus.PAUSED, **past)
    expired_draft = make_campaign(store, "ED", products=[p], status=CampaignStatus.DRAFT, **past)
    running = make_campaign(store, "R", products=[p])
    theirs = make_campaign(other_store, "T", products=[q], **past)

    assert end_expired_campaigns_task.delay(store_id=store.pk).get() == 2
    assert _campaign_status(store, expired_active) == CampaignStatus.ENDED
    assert _campaign_status(store, expired_paused) == CampaignStatus.ENDED
    assert _campaign_status(store, expired_draft) == CampaignStatus.DRAFT  # never ran: left alone
    assert _campaign_status(store, running) == CampaignStatus.ACTIVE
    assert _campaign_status(other_store, theirs) == CampaignStatus.ACTIVE  # another store's run
    # Without a store id every store is swept; a second sweep has nothing left to do.
    assert end_expired_campaigns_task.delay().get() == 1
    assert _campaign_status(other_store, theirs) == CampaignStatus.ENDED
    assert end_expired_campaigns_task.delay().get() == 0


def test_expired_campaign_is_not_served_even_before_the_task(api_client, store, shop, make_campaign):
    mugs = [shop["products"][f"M{i}"] for i in range(4)]
    now = timezone.now()
    c = make_campaign(store, "X", title="expired", products=mugs, starts_at=now - timedelta(days=2))
    make_campaign(store, "Y", title="live", products=mugs)
    before = api_client.get("/api/v1/ads?customer=C1&n=5").json()  # loads the worker's campaign table
    assert sorted(a["title"] for a in before["ads"]) == ["expired", "live"]
    with unscoped():  # expires without a save signal: the worker's campaign table is now stale
        Campaign.objects.filter(pk=c.pk).update(ends_at=now - timedelta(seconds=1))
    body = api_client.get("/api/v1/ads?customer=C0&n=5").json()
    assert [a["title"] for a in body["ads"]] == ["live"]
    with unscoped():
        assert Impression.objects.filter(campaign=c).count() == 1  # only the one served before expiry
        assert Campaign.objects.get(pk=c.pk).impressions_served == 1
    assert end_expired_campaigns_task.delay(store_id=store.pk).get() == 1
    assert _campaign_status(store, c) == CampaignStatus.ENDED
