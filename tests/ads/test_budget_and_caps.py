"""Budget, daily caps, clicks, ranking and the campaign table: the ads mutants that survived.

Each test here targets a "real gap" of docs/benchmarks.md ("Mutation testing", the ads sections):
a rule of ``shop_recs/ads/services.py`` or ``shop_recs/ads/eligibility.py`` that the serving and
tracking tests did not pin down. No trained model is needed (SQLite, no services).
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from shop_recs.ads import eligibility, services
from shop_recs.ads.eligibility import CampaignSpec, eligible_campaigns, running_campaigns
from shop_recs.ads.models import Campaign, CampaignStatus, DailyCap, Impression
from shop_recs.stores.scoping import store_scope, unscoped

pytestmark = pytest.mark.django_db


def _spec(campaign: Campaign, **overrides) -> CampaignSpec:
    """The serving view of a campaign, built from the row (so that ended campaigns can be passed too)."""
    with unscoped():
        return dataclasses.replace(eligibility.spec_of(campaign), **overrides)


def _record(store, spec, customer_pk, now, *, score=1.0):
    with store_scope(store):
        served = services.record_impression(store, spec, customer_pk, slot="home", score=score, now=now)
    if served is None:
        return None
    with unscoped():
        return Impression.objects.get(impression_id=served.impression_id)


def _caps(campaign) -> dict:
    with unscoped():
        return dict(DailyCap.objects.filter(campaign=campaign).values_list("day", "count"))


def _served(campaign) -> int:
    with unscoped():
        return Campaign.objects.get(pk=campaign.pk).impressions_served


# --- record_click -------------------------------------------------------------------------------


def test_click_marks_only_the_clicked_impression(store, make_campaign, make_customer):
    """record_click 6: the click UPDATE must be filtered by ``impression_id``."""
    cust = make_customer(store, "C1")
    camp = make_campaign(store, "A")
    now = timezone.now()
    first = _record(store, _spec(camp), cust.pk, now)
    second = _record(store, _spec(camp), cust.pk, now)
    assert first is not None and second is not None

    with store_scope(store):
        assert services.record_click(first.impression_id, now=now) == (True, True)
    with unscoped():
        first.refresh_from_db()
        second.refresh_from_db()
    assert first.clicked_at == now
    assert second.clicked_at is None
    # Clicking again is idempotent; clicking the other one is its own first click.
    with store_scope(store):
        assert services.record_click(first.impression_id, now=now + timedelta(minutes=1)) == (True, False)
        assert services.record_click(second.impression_id, now=now) == (True, True)


# --- record_impression: budget, cap, dates --------------------------------------------------------


def test_budget_spent_after_cap_charged_leaves_daily_count_unchanged(store, make_campaign, make_customer):
    """record_impression 58: a refused budget charge must roll back the cap increment."""
    cust = make_customer(store, "C1")
    camp = make_campaign(store, "A", budget=Decimal("0.01"), frequency_cap=5)  # one impression at CPM 10.00
    now = timezone.now()
    assert _record(store, _spec(camp), cust.pk, now) is not None
    assert _caps(camp) == {now.date(): 1}
    # The worker's table is stale (it still says nothing spent): the cap UPDATE passes, the budget one fails.
    assert _record(store, _spec(camp, spend_micros=0), cust.pk, now) is None
    assert _caps(camp) == {now.date(): 1}
    assert _served(camp) == 1
    with unscoped():
        assert Impression.objects.filter(campaign=camp).count() == 1


def test_budget_spent_on_a_customers_first_ad_of_the_day_leaves_no_cap_row(store, make_campaign, make_customer):
    """record_impression 58 (first impression of the day): nothing is written when the budget is spent."""
    cust = make_customer(store, "C1")
    camp = make_campaign(store, "A", budget=Decimal("0.03"), impressions_served=3, spend_micros=30_000)
    now = timezone.now()
    assert _record(store, _spec(camp, spend_micros=0), cust.pk, now) is None
    assert _caps(camp) in ({}, {now.date(): 0})
    assert _served(camp) == 3


def test_daily_cap_counts_today_only(store, make_campaign, make_customer):
    """record_impression 27: the cap UPDATE is per day; yesterday's row neither caps today nor is charged."""
    capped = make_customer(store, "C1")
    under = make_customer(store, "C2")
    camp = make_campaign(store, "A", frequency_cap=2)
    now = timezone.now()
    today, yesterday = now.date(), now.date() - timedelta(days=1)
    with unscoped():
        DailyCap.objects.create(store=store, campaign=camp, customer=capped, day=yesterday, count=2)
        DailyCap.objects.create(store=store, campaign=camp, customer=under, day=yesterday, count=1)

    assert _record(store, _spec(camp), capped.pk, now) is not None
    assert _record(store, _spec(camp), under.pk, now) is not None
    with unscoped():
        counts = {(c.customer_id, c.day): c.count for c in DailyCap.objects.filter(campaign=camp)}
    assert counts == {
        (capped.pk, yesterday): 2,
        (capped.pk, today): 1,
        (under.pk, yesterday): 1,
        (under.pk, today): 1,
    }
    # Today's cap does apply: a second impression today is allowed, the third is refused.
    assert _record(store, _spec(camp), under.pk, now) is not None
    assert _record(store, _spec(camp), under.pk, now) is None
    assert _served(camp) == 3


def test_daily_cap_via_serve_ads_ignores_yesterday(store, make_campaign, make_customer):
    """The served endpoint too: capped yesterday, served today; capped today, nothing."""
    cust = make_customer(store, "C1")
    camp = make_campaign(store, "A", title="a", frequency_cap=1)
    now = timezone.now()
    with unscoped():
        DailyCap.objects.create(store=store, campaign=camp, customer=cust, day=now.date() - timedelta(days=1), count=1)
    with store_scope(store):
        assert [a["title"] for a in services.serve_ads(store, "C1", now=now).ads] == ["a"]
        assert services.serve_ads(store, "C1", now=now).ads == []


def test_ended_campaign_is_not_charged(store, make_campaign, make_customer):
    """record_impression 47: the charge re-checks ``ends_at`` (a stale spec may still list the campaign)."""
    cust = make_customer(store, "C1")
    now = timezone.now()
    camp = make_campaign(store, "A", starts_at=now - timedelta(days=3), ends_at=now - timedelta(hours=1))
    stale = _spec(camp, ends_at=now + timedelta(days=1))
    assert _record(store, stale, None, now) is None
    assert _record(store, stale, cust.pk, now) is None
    assert _served(camp) == 0
    assert _caps(camp) in ({}, {now.date(): 0})
    # Exactly at the end it is over too (ends_at is exclusive).
    camp2 = make_campaign(store, "B", ends_at=now)
    assert _record(store, _spec(camp2), None, now) is None
    assert _served(camp2) == 0


def test_not_yet_started_campaign_is_not_charged(store, make_campaign):
    now = timezone.now()
    camp = make_campaign(store, "A", starts_at=now + timedelta(hours=1))
    assert _record(store, _spec(camp, starts_at=now - timedelta(days=1)), None, now) is None
    assert _served(camp) == 0
    camp2 = make_campaign(store, "B", starts_at=now)  # starts_at is inclusive
    assert _record(store, _spec(camp2), None, now) is not None
    assert _served(camp2) == 1


# --- scores --------------------------------------------------------------------------------------


def test_scores_are_rounded_as_documented(store, make_campaign):
    """record_impression 78 / serve_ads 82: stored score to 6 places, returned score to 4."""
    make_campaign(store, "A", title="a", weight=1.23456789)
    now = timezone.now()
    with store_scope(store):
        ads = services.serve_ads(store, None, now=now).ads
    expected = 1.23456789 * services.AFFINITY_FLOOR  # anonymous: no affinity, the floor only
    assert ads[0]["score"] == round(expected, 4) == 0.1235
    with unscoped():
        imp = Impression.objects.get(impression_id=ads[0]["impression_id"])
    assert imp.score == round(expected, 6) == 0.123457


def test_rank_campaigns_score_and_tie_break(store):
    """rank_campaigns 6, 17: the (1 - floor) share of the affinity, and more remaining budget first."""
    now = timezone.now()
    base = {
        "name": "x",
        "title": "x",
        "image_url": "",
        "landing_url": "https://x.example",
        "starts_at": now - timedelta(days=1),
        "ends_at": now + timedelta(days=1),
        "pricing_model": "cpm",
        "room_micros": 1,
        "budget_micros": 100,
        "daily_budget_micros": None,
        "spend_micros": 0,
        "spend_day": None,
        "day_spend_micros": 0,
        "frequency_cap": 5,
        "segment_ids": frozenset(),
        "product_ids": frozenset(),
    }
    a = CampaignSpec(pk=1, weight=1.0, **base)
    b = CampaignSpec(pk=2, weight=2.0, **base)
    ranked = services.rank_campaigns([b, a], {1: 0.5})
    assert [s.pk for s, _ in ranked] == [1, 2]
    scores = dict((s.pk, sc) for s, sc in ranked)
    assert scores[1] == pytest.approx(1.0 * (0.1 + 0.9 * 0.5))  # 0.55
    assert scores[2] == pytest.approx(2.0 * 0.1)  # 0.2
    assert services.rank_campaigns([a], {1: 1.0})[0][1] == pytest.approx(1.0)

    # Equal scores: the campaign with more of its budget left comes first, whatever its pk.
    nearly_spent = CampaignSpec(pk=3, weight=1.0, **{**base, "spend_micros": 90})
    fresh = CampaignSpec(pk=4, weight=1.0, **{**base, "spend_micros": 10})
    assert [s.pk for s, _ in services.rank_campaigns([nearly_spent, fresh], {})] == [4, 3]
    # Same share left: the older (lower pk) first.
    twin = CampaignSpec(pk=5, weight=1.0, **{**base, "spend_micros": 10})
    assert [s.pk for s, _ in services.rank_campaigns([twin, fresh], {})] == [4, 5]


# --- targeting ----------------------------------------------------------------------------------


def test_automatic_segment_reaches_its_members(store, make_campaign, make_customer, make_segment):
    """customer_targeting 22: the profile's ``auto_segment`` counts as one of the customer's segments."""
    from analytics.models import CustomerProfile

    member = make_customer(store, "C1")
    make_customer(store, "C2")
    auto = make_segment(store, "Cluster 0", kind="auto")
    rule = make_segment(store, "Rule seg", [member])
    with unscoped():
        profile = CustomerProfile.objects.get(customer=member)
        profile.auto_segment = auto
        profile.save()
    make_campaign(store, "T", title="auto-targeted", segments=[auto])
    with store_scope(store):
        assert services.customer_targeting("C1") == (member.pk, frozenset({auto.pk, rule.pk}))
        assert [a["title"] for a in services.serve_ads(store, "C1").ads] == ["auto-targeted"]
        assert services.serve_ads(store, "C2").ads == []


# --- the campaign table (eligibility.py) ----------------------------------------------------------


def test_campaigns_are_loaded_per_store(store, other_store, make_campaign):
    """_load 1: another store's campaigns are never in this store's table, nor served."""
    mine = make_campaign(store, "Mine", title="mine")
    theirs = make_campaign(other_store, "Theirs", title="theirs")
    now = timezone.now()
    assert [s.pk for s in running_campaigns(store.pk, now)] == [mine.pk]
    assert [s.pk for s in running_campaigns(other_store.pk, now)] == [theirs.pk]
    with store_scope(store):
        assert [a["title"] for a in services.serve_ads(store, None, n=5, now=now).ads] == ["mine"]
    assert _served(theirs) == 0


def test_served_ad_carries_the_whole_creative(store, make_campaign):
    """_load 23: title, image_url and landing_url of the campaign reach the response."""
    camp = make_campaign(
        store,
        "A",
        title="Big sale",
        image_url="https://cdn.example/banner.png",
        landing_url="https://shop.example/sale",
    )
    with store_scope(store):
        ad = services.serve_ads(store, None, slot="home").ads[0]
    assert set(ad) == {"impression_id", "score", "campaign_id", "title", "image_url", "landing_url", "products"}
    assert ad["campaign_id"] == camp.pk
    assert ad["title"] == "Big sale"
    assert ad["image_url"] == "https://cdn.example/banner.png"
    assert ad["landing_url"] == "https://shop.example/sale"


def test_running_campaigns_without_now(store, make_campaign):
    """running_campaigns 2: ``now`` defaults to the current time."""
    camp = make_campaign(store, "A")
    make_campaign(store, "Over", ends_at=timezone.now() - timedelta(minutes=1))
    assert [s.pk for s in running_campaigns(store.pk)] == [camp.pk]


def test_invalidate_without_store_clears_every_store(store, other_store, make_campaign):
    """invalidate_campaigns 1: no store given = every store's entry dropped."""
    make_campaign(store, "A")
    make_campaign(other_store, "B")
    running_campaigns(store.pk)
    running_campaigns(other_store.pk)
    assert set(eligibility._cache) >= {store.pk, other_store.pk}
    eligibility.invalidate_campaigns()
    assert eligibility._cache == {}


def test_deleting_a_campaign_or_its_products_refreshes_the_table(store, make_campaign, make_product):
    """connect_signals 9, 18, 20 (outside mutmut): delete and M2M changes invalidate at once."""
    p1, p2 = make_product(store, "P1"), make_product(store, "P2")
    keep = make_campaign(store, "Keep", products=[p1, p2])
    gone = make_campaign(store, "Gone")
    assert {s.pk for s in running_campaigns(store.pk)} == {keep.pk, gone.pk}
    with unscoped():
        gone.delete()
    assert [s.pk for s in running_campaigns(store.pk)] == [keep.pk]
    with unscoped():
        keep.products.remove(p2)
    assert running_campaigns(store.pk)[0].product_ids == frozenset({p1.pk})


def test_promoted_categories_include_subcategories_and_explicit_products(store, make_campaign, make_product):
    """promoted_product_ids 29, 33, 35: the category, its children (" > "), and explicit products."""
    from shop_recs.catalog.models import Category

    with unscoped():
        kitchen = Category.objects.create(store=store, name="Kitchen", path="Kitchen")
        mugs = Category.objects.create(store=store, name="Mugs", path="Kitchen > Mugs", parent=kitchen)
        ware = Category.objects.create(store=store, name="Kitchenware", path="Kitchenware")
        shirts = Category.objects.create(store=store, name="Shirts", path="Clothes > Shirts")
    pan = make_product(store, "PAN", category=kitchen)
    mug = make_product(store, "MUG", category=mugs)
    make_product(store, "SPOON", category=ware)  # shares the prefix "Kitchen" but is no subcategory
    make_product(store, "SHIRT2", category=shirts)
    shirt = make_product(store, "SHIRT", category=shirts)
    camp = make_campaign(store, "A", products=[shirt], categories=[kitchen])
    with store_scope(store):
        assert eligibility.promoted_product_ids(camp) == frozenset({pan.pk, mug.pk, shirt.pk})
    assert running_campaigns(store.pk)[0].product_ids == frozenset({pan.pk, mug.pk, shirt.pk})


def test_eligible_campaigns_rules():
    """eligible_campaigns 2, 4, 6, 8, 19, 24: window (start inclusive, end exclusive), budget, cap."""
    now = timezone.now()

    def spec(pk, **kw):
        fields = {
            "pk": pk,
            "name": "x",
            "title": "x",
            "image_url": "",
            "landing_url": "https://x.example",
            "starts_at": now - timedelta(days=1),
            "ends_at": now + timedelta(days=1),
            "pricing_model": "cpm",
            "room_micros": 1,
            "budget_micros": 10,
            "daily_budget_micros": None,
            "spend_micros": 0,
            "spend_day": None,
            "day_spend_micros": 0,
            "frequency_cap": 2,
            "weight": 1.0,
            "segment_ids": frozenset(),
            "product_ids": frozenset(),
        }
        fields.update(kw)
        return CampaignSpec(**fields)

    starts_now = spec(1, starts_at=now)
    ends_now = spec(2, ends_at=now)
    not_started = spec(3, starts_at=now + timedelta(seconds=1))
    spent = spec(4, spend_micros=10)
    one_left = spec(5, spend_micros=9)
    overspent = spec(6, spend_micros=11)
    plain = spec(7)
    specs = [starts_now, ends_now, not_started, spent, one_left, overspent, plain]

    def pks(**kw):
        return [s.pk for s in eligible_campaigns(specs, now=now, **kw)]

    assert pks(segment_ids=None) == [1, 5, 7]
    assert pks(segment_ids=frozenset(), shown_today=None) == [1, 5, 7]
    assert pks(segment_ids=frozenset()) == [1, 5, 7]
    # The cap: reached (== cap) or beyond excludes, below keeps.
    assert pks(segment_ids=frozenset(), shown_today={1: 2, 5: 1, 7: 3}) == [5]
    # Anonymous visitors have no cap.
    assert pks(segment_ids=None, shown_today={1: 2, 5: 1, 7: 3}) == [1, 5, 7]
    # A spent budget excludes even inside the window, an open window does not help a spent budget.
    assert [s.pk for s in eligible_campaigns([spent], now=now, segment_ids=None)] == []
    assert [s.pk for s in eligible_campaigns([ends_now], now=now, segment_ids=None)] == []
    # A targeted campaign the visitor is not in is skipped, and the campaigns after it still count
    # (eligible_campaigns 16: that skip turned into the end of the loop).
    targeted = spec(8, segment_ids=frozenset({42}))
    assert [s.pk for s in eligible_campaigns([targeted, plain], now=now, segment_ids=None)] == [7]
    assert [s.pk for s in eligible_campaigns([targeted, plain], now=now, segment_ids={5})] == [7]
    assert [s.pk for s in eligible_campaigns([targeted, plain], now=now, segment_ids={42})] == [8, 7]


# --- status changes -----------------------------------------------------------------------------


def test_end_expired_campaigns_and_set_status(store, other_store, make_campaign):
    """end_expired_campaigns 2-18, set_campaign_status 2, 6: running campaigns past their end are ended."""
    now = timezone.now()
    past = {"starts_at": now - timedelta(days=5), "ends_at": now - timedelta(hours=1)}
    active_over = make_campaign(store, "A", **past)
    paused_over = make_campaign(store, "P", status=CampaignStatus.PAUSED, **past)
    draft_over = make_campaign(store, "D", status=CampaignStatus.DRAFT, **past)
    at_end = make_campaign(store, "E", starts_at=now - timedelta(days=1), ends_at=now)
    running = make_campaign(store, "R")
    elsewhere = make_campaign(other_store, "O", **past)

    assert services.end_expired_campaigns(store, now=now) == 3
    with unscoped():
        status = dict(Campaign.objects.values_list("pk", "status"))
    assert status == {
        active_over.pk: CampaignStatus.ENDED,
        paused_over.pk: CampaignStatus.ENDED,
        draft_over.pk: CampaignStatus.DRAFT,
        at_end.pk: CampaignStatus.ENDED,
        running.pk: CampaignStatus.ACTIVE,
        elsewhere.pk: CampaignStatus.ACTIVE,
    }
    assert services.end_expired_campaigns(store, now=now) == 0
    # Without ``now``: the current time.
    assert services.end_expired_campaigns(other_store) == 1

    with pytest.raises(ValueError, match="unknown status 'bogus'"):
        services.set_campaign_status(running, "bogus")
    with unscoped():
        updated = services.set_campaign_status(running, CampaignStatus.PAUSED)
        assert updated is running
        assert Campaign.objects.get(pk=running.pk).status == CampaignStatus.PAUSED


# --- second round: survivors of the 80-mutant samples -------------------------------------------


def test_full_cap_rolls_back_the_fresh_cap_row(store, make_campaign, make_customer):
    """record_impression 35: a refused impression "changes nothing" — not even the cap row it inserted."""
    cust = make_customer(store, "C1")
    camp = make_campaign(store, "A")
    assert _record(store, _spec(camp, frequency_cap=0), cust.pk, timezone.now()) is None
    assert _caps(camp) == {}
    assert _served(camp) == 0


def test_running_campaigns_skip_inactive_and_keep_the_name(store, make_campaign):
    """_load 12 and 21: only *active* campaigns are running; the spec carries the campaign's name."""
    live = make_campaign(store, "Live")
    make_campaign(store, "Paused", status=CampaignStatus.PAUSED)
    make_campaign(store, "Draft", status=CampaignStatus.DRAFT)
    specs = running_campaigns(store.pk, timezone.now())
    assert [(s.pk, s.name) for s in specs] == [(live.pk, "Live")]


def test_table_is_served_from_the_cache_within_the_ttl(store, make_campaign, settings):
    """running_campaigns 4: a second call within the TTL reuses the entry (a signal-less change is not seen)."""
    settings.ADS_CAMPAIGN_CACHE_TTL = 60
    camp = make_campaign(store, "A")
    first = running_campaigns(store.pk)
    with unscoped():
        Campaign.objects.filter(pk=camp.pk).update(status=CampaignStatus.PAUSED)  # no post_save
    assert running_campaigns(store.pk) is first
    eligibility.invalidate_campaigns(store.pk)
    assert running_campaigns(store.pk) == []


def test_saving_a_campaign_drops_only_its_stores_entry(store, other_store, make_campaign):
    """_on_change 2, 7, 9: the receiver invalidates the saved campaign's store, not every store."""
    camp = make_campaign(store, "A")
    make_campaign(other_store, "B")
    running_campaigns(store.pk)
    other = running_campaigns(other_store.pk)
    with unscoped():
        camp.title = "New headline"
        camp.save()
    assert store.pk not in eligibility._cache
    assert eligibility._cache[other_store.pk][1] is other


@pytest.fixture
def rewired_signals():
    """Disconnect the ads receivers, let the test call ``connect_signals()`` itself, restore afterwards."""
    from django.db.models.signals import m2m_changed, post_delete, post_save

    sigs = (post_save, post_delete, m2m_changed)
    saved = [list(s.receivers) for s in sigs]
    post_save.disconnect(sender=Campaign, dispatch_uid="ads_campaign_saved")
    post_delete.disconnect(sender=Campaign, dispatch_uid="ads_campaign_deleted")
    for through in (Campaign.products.through, Campaign.categories.through, Campaign.segments.through):
        m2m_changed.disconnect(sender=through, dispatch_uid=f"ads_m2m_{through.__name__}")
    try:
        yield
    finally:
        for s, receivers in zip(sigs, saved, strict=True):
            s.receivers[:] = receivers
            s.sender_receivers_cache.clear()


def test_connect_signals_wires_campaign_changes_only(
    rewired_signals, store, make_campaign, make_product, django_user_model
):
    """connect_signals 2, 5, 9, 18, 20: saves/deletes/M2M changes of *campaigns* refresh the table
    (and connecting is what makes them do so); saving another store-owned row (a product) or another
    model's M2M change (a user's groups) does not."""
    from django.contrib.auth.models import Group

    p1, p2 = make_product(store, "P1"), make_product(store, "P2")
    keep = make_campaign(store, "Keep", products=[p1, p2])
    gone = make_campaign(store, "Gone")
    user = django_user_model.objects.create_user(username="u-groups", password="pw-123456!")
    group = Group.objects.create(name="g-ads")
    eligibility.connect_signals()

    table = running_campaigns(store.pk)
    with unscoped():
        p1.title = "Renamed"
        p1.save()
    user.groups.add(group)
    assert eligibility._cache[store.pk][1] is table

    with unscoped():
        keep.title = "Saved"
        keep.save()
    assert store.pk not in eligibility._cache
    assert {s.pk for s in running_campaigns(store.pk)} == {keep.pk, gone.pk}
    with unscoped():
        gone.delete()
    assert [s.pk for s in running_campaigns(store.pk)] == [keep.pk]
    with unscoped():
        keep.products.remove(p2)
    assert running_campaigns(store.pk)[0].product_ids == frozenset({p1.pk})


# --- predicted_affinities: both paths with stubbed serving collaborators --------------------------


class _Activity:
    recent_products = [11, 12]

    def weights(self):
        return {11: 1.0, 12: 0.5}


@pytest.fixture
def stub_serving(monkeypatch):
    """Stubs for the serving layer: record what predicted_affinities passes in; return fixed scores."""
    from types import SimpleNamespace

    import numpy as np

    calls: dict = {}
    conf: dict = {"lookup": None, "scores": np.zeros(0), "index": {}}

    def candidate_affinities(state, customer_pk, weights, recent):
        calls["candidates"] = (customer_pk, weights, recent)
        return conf["lookup"]

    def score_history(state, weights, recent):
        calls["history"] = (weights, recent)
        return SimpleNamespace(scores=conf["scores"])

    monkeypatch.setattr(services.realtime, "recent_activity", lambda store_pk, customer_pk: _Activity())
    state = SimpleNamespace(snap=SimpleNamespace(index=conf["index"]))
    monkeypatch.setattr(services, "serving_state", lambda store: state)
    monkeypatch.setattr(services.serving, "candidate_affinities", candidate_affinities)
    monkeypatch.setattr(services.serving, "score_history", score_history)
    return calls, conf


def test_affinities_precomputed_path(store, make_campaign, stub_serving):
    """predicted_affinities 15, 34, 38, 42: max over the promoted products among the candidates,
    promoted products outside them count 0, none among them = 0; the customer is passed on."""
    calls, conf = stub_serving
    conf["lookup"] = {1: 0.5, 2: 0.2, 3: 1.0}
    camp = make_campaign(store, "A")
    small = _spec(camp, pk=101, product_ids=frozenset({1, 2}))  # fewer products than candidates
    small_out = _spec(camp, pk=102, product_ids=frozenset({2, 99}))  # 99 is not a candidate: 0
    big_none = _spec(camp, pk=103, product_ids=frozenset({7, 8, 9, 10}))  # none is a candidate
    big_some = _spec(camp, pk=104, product_ids=frozenset({2, 3, 8, 9}))
    out = services.predicted_affinities(store, 42, [small, small_out, big_none, big_some])
    assert out == {101: 0.5, 102: 0.2, 103: 0.0, 104: 1.0}
    assert calls["candidates"] == (42, {11: 1.0, 12: 0.5}, [11, 12])


def test_affinities_full_catalog_path(store, make_campaign, stub_serving):
    """predicted_affinities 46, 50, 54, 58: without precomputed arrays the history is scored over the
    catalog, min-max normalised, and a campaign gets the max over its promoted products' positions."""
    import numpy as np

    calls, conf = stub_serving
    conf["lookup"] = None
    conf["scores"] = np.array([2.0, 4.0, 10.0, 6.0], dtype=np.float32)  # minmax: 0, .25, 1, .5
    conf["index"].update({1: 0, 2: 1, 3: 2, 4: 3})
    camp = make_campaign(store, "A")
    a = _spec(camp, pk=201, product_ids=frozenset({2, 4}))  # max(.25, .5)
    b = _spec(camp, pk=202, product_ids=frozenset({1, 77}))  # 77 unknown to the catalog: ignored
    c = _spec(camp, pk=203, product_ids=frozenset({77}))  # nothing in the catalog: 0
    out = services.predicted_affinities(store, 42, [a, b, c])
    assert out == pytest.approx({201: 0.5, 202: 0.0, 203: 0.0})
    assert calls["history"] == ({11: 1.0, 12: 0.5}, [11, 12])
