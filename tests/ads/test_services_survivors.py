"""Promises of ``shop_recs.ads.services`` that only mutation testing showed untested (issue #17).

Each test pins an outcome a surviving mutant of ``benchmarks/mutation.py --only ads_services`` changed
without any test noticing; the expected values are worked out from the promise, not read off the code
(docs/benchmarks.md § Mutation testing lists the survivors left and why they change nothing).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db.models.signals import post_save
from django_scopes.exceptions import ScopeError

from shop_recs.ads import services
from shop_recs.ads.models import Campaign, CampaignStatus
from shop_recs.catalog.models import Category
from shop_recs.stores.scoping import store_scope, unscoped

pytestmark = pytest.mark.django_db


def _status(campaign: Campaign) -> tuple[str, str]:
    with unscoped():
        fresh = Campaign.objects.get(pk=campaign.pk)
    return fresh.status, fresh.status_reason


def test_losing_a_segment_pauses_its_running_and_draft_campaigns_only(store, make_campaign, make_segment):
    loyal, other = make_segment(store, "Loyal"), make_segment(store, "Bargain hunters")
    running = make_campaign(store, "Running", segments=[loyal])
    draft = make_campaign(store, "Draft", segments=[loyal, other], status=CampaignStatus.DRAFT)
    paused = make_campaign(store, "Paused", segments=[loyal], status=CampaignStatus.PAUSED, status_reason="by hand")
    ended = make_campaign(store, "Ended", segments=[loyal], status=CampaignStatus.ENDED)
    elsewhere = make_campaign(store, "Elsewhere", segments=[other])
    untargeted = make_campaign(store, "Everyone")

    assert services.pause_campaigns_losing_segment(store.pk, loyal.pk, "Loyal") == 2

    reason = "paused: its target segment “Loyal” was deleted"
    assert _status(running) == (CampaignStatus.PAUSED, reason)
    assert _status(draft) == (CampaignStatus.PAUSED, reason)
    # Already stopped campaigns keep their state and the merchant's reason.
    assert _status(paused) == (CampaignStatus.PAUSED, "by hand")
    assert _status(ended) == (CampaignStatus.ENDED, "")
    assert _status(elsewhere) == (CampaignStatus.ACTIVE, "")
    assert _status(untargeted) == (CampaignStatus.ACTIVE, "")


def test_losing_a_segment_no_campaign_targets_pauses_nothing(store, make_campaign, make_segment):
    unused = make_segment(store, "Unused")
    everyone = make_campaign(store, "Everyone")
    assert services.pause_campaigns_losing_segment(store.pk, unused.pk, "Unused") == 0
    assert _status(everyone) == (CampaignStatus.ACTIVE, "")


def test_the_pause_reason_is_cut_to_the_columns_300_characters(store, make_campaign, make_segment):
    name = "N" * 400
    seg = make_segment(store, "long")
    campaign = make_campaign(store, "Long", segments=[seg])
    assert services.pause_campaigns_losing_segment(store.pk, seg.pk, name) == 1
    status, reason = _status(campaign)
    expected = ("paused: its target segment “" + name)[:300]
    assert status == CampaignStatus.PAUSED and reason == expected and len(reason) == 300


def test_losing_a_segment_touches_only_the_named_store(store, other_store, make_campaign, make_segment):
    seg = make_segment(store, "Loyal")
    mine = make_campaign(store, "Mine", segments=[seg])
    # Called for the other store, the segment's id matches none of that store's campaigns.
    assert services.pause_campaigns_losing_segment(other_store.pk, seg.pk, "Loyal") == 0
    assert _status(mine) == (CampaignStatus.ACTIVE, "")


def test_a_status_change_clears_the_reason_of_the_last_one(store, make_campaign):
    campaign = make_campaign(store, "Paused", status=CampaignStatus.PAUSED, status_reason="by hand")
    with unscoped():
        services.set_campaign_status(campaign, CampaignStatus.ACTIVE)
    assert _status(campaign) == (CampaignStatus.ACTIVE, "")


def test_a_status_change_from_a_stale_copy_keeps_everyone_elses_edits(store, make_campaign):
    """Only the status columns are written: a copy loaded before a merchant's edit does not undo it."""
    campaign = make_campaign(store, "Spring", title="Old headline")
    with unscoped():
        stale = Campaign.objects.get(pk=campaign.pk)
        Campaign.objects.filter(pk=campaign.pk).update(title="New headline")
        services.set_campaign_status(stale, CampaignStatus.PAUSED)
        fresh = Campaign.objects.get(pk=campaign.pk)
    assert (fresh.status, fresh.title) == (CampaignStatus.PAUSED, "New headline")


def test_an_unknown_status_is_refused_and_nothing_is_saved(store, make_campaign):
    campaign = make_campaign(store, "Spring")
    with pytest.raises(ValueError, match="unknown status 'archived'"):
        services.set_campaign_status(campaign, "archived")
    assert _status(campaign) == (CampaignStatus.ACTIVE, "")


def test_pausing_for_a_lost_segment_keeps_an_edit_made_meanwhile(store, make_campaign, make_segment):
    """Each pause writes only the status columns: a title edited while the loop runs (here: by a
    receiver of the first pause's save, before the second campaign's save) is not written back."""
    seg = make_segment(store, "Loyal")
    first, second = make_campaign(store, "A", segments=[seg]), make_campaign(store, "B", segments=[seg])
    edited: list[int] = []

    def edit_the_other(sender, instance, **kwargs):
        if not edited:
            other = second.pk if instance.pk == first.pk else first.pk
            with unscoped():
                Campaign.objects.filter(pk=other).update(title="Edited meanwhile")
            edited.append(other)

    post_save.connect(edit_the_other, sender=Campaign)
    try:
        assert services.pause_campaigns_losing_segment(store.pk, seg.pk, "Loyal") == 2
    finally:
        post_save.disconnect(edit_the_other, sender=Campaign)
    with unscoped():
        other = Campaign.objects.get(pk=edited[0])
    assert (other.status, other.title) == (CampaignStatus.PAUSED, "Edited meanwhile")


def test_the_scope_error_names_what_is_missing():
    with pytest.raises(ScopeError, match=r"^ads: a single-store scope must be active$"):
        services._scoped_store_id()


def test_campaign_values_list_the_targeted_categories_and_segments_as_ids(store, make_campaign, make_segment):
    with unscoped():
        hats, mugs = (Category.objects.create(store=store, name=n, path=n) for n in ("Hats", "Mugs"))
    loyal, new = make_segment(store, "Loyal"), make_segment(store, "New")
    campaign = make_campaign(store, "Spring", categories=[mugs, hats], segments=[new, loyal])
    with store_scope(store):
        values = services.campaign_values(campaign)
    assert values["categories"] == sorted([hats.pk, mugs.pk])
    assert values["segments"] == sorted([loyal.pk, new.pk])


def test_a_returning_customers_ad_request_scores_nothing_and_reads_no_activity(store, shop, make_campaign, monkeypatch):
    """serve_ads hands ``predicted_affinities`` serving's customer activity and memo: on a hit of
    serving's customer cache (stood in for here: the same ``ServingCustomer`` object twice, as the
    cache returns it) a repeat request scores nothing, and no request reads the activity again."""
    make_campaign(store, "Mugs", products=[shop["products"]["M0"]])
    make_campaign(store, "Shirts", products=[shop["products"]["S0"]])
    real_customer = services.live_activity.serving_customer
    cached: dict = {}

    def cache_hit(store_id, external_id):
        if external_id not in cached:
            cached[external_id] = real_customer(store_id, external_id)
        return cached[external_id]

    def no_activity_read(*args, **kwargs):
        raise AssertionError("the activity was read again instead of taken from serving's customer")

    scored: list[int] = []
    real_scoring = services.serving.candidate_affinities
    monkeypatch.setattr(services.serving, "candidate_affinities", lambda *a: scored.append(1) or real_scoring(*a))
    monkeypatch.setattr(services.live_activity, "serving_customer", cache_hit)
    monkeypatch.setattr(services.realtime, "recent_activity", no_activity_read)
    with store_scope(store):
        first = services.serve_ads(store, "C0", n=2)
        second = services.serve_ads(store, "C0", n=2)
    assert first.customer_known and len(first.ads) == 2
    assert [a["campaign_id"] for a in second.ads] == [a["campaign_id"] for a in first.ads]
    assert len(scored) == 1


def test_equal_scores_go_to_the_larger_share_of_budget_left_then_the_older_campaign(store, make_campaign):
    """The tie-break is the *share* of the budget left, not the amount: 50 of 100 left beats 100 of
    1,000 left; two campaigns with half left go oldest first."""
    half = make_campaign(store, "Half of 100 left", budget=100)
    tenth = make_campaign(store, "A tenth of 1000 left", budget=1000)
    also_half = make_campaign(store, "Half of 10 left", budget=10)
    with store_scope(store):
        specs = {spec.pk: spec for spec in services.running_campaigns(store.pk)}
    for campaign, spent_share in ((half, 0.5), (tenth, 0.9), (also_half, 0.5)):
        spec = specs[campaign.pk]
        spec.spend_micros = int(spec.budget_micros * spent_share)
    ranked = services.rank_campaigns(list(specs.values()), {})
    assert [spec.pk for spec, _score in ranked] == [half.pk, also_half.pk, tenth.pk]
    assert {score for _spec, score in ranked} == {services.AFFINITY_FLOOR}  # weight 1, no affinity


def test_without_precomputed_arrays_the_affinities_come_from_scoring_the_catalog(
    store, shop, make_campaign, monkeypatch
):
    """A model version without precomputed arrays (``candidate_affinities`` answers None): the
    campaign's affinity is the best min-max-scaled catalog score of its products, so a mug buyer
    ranks the mug campaign above the shirt one, and a shirt buyer the other way round."""
    mugs = make_campaign(store, "Mugs", products=[shop["products"]["M3"]])
    shirts = make_campaign(store, "Shirts", products=[shop["products"]["S3"]])
    monkeypatch.setattr(services.serving, "candidate_affinities", lambda *a: None)
    with store_scope(store):
        specs = services.running_campaigns(store.pk)
        mug_buyer = services.predicted_affinities(store, shop["customers"][0].pk, specs)
        shirt_buyer = services.predicted_affinities(store, shop["customers"][1].pk, specs)
    assert set(mug_buyer) == set(shirt_buyer) == {mugs.pk, shirts.pk}
    assert all(0.0 <= v <= 1.0 for v in [*mug_buyer.values(), *shirt_buyer.values()])
    assert mug_buyer[mugs.pk] > mug_buyer[shirts.pk]
    assert shirt_buyer[shirts.pk] > shirt_buyer[mugs.pk]


def test_an_anonymous_visitor_costs_no_activity_read(store, shop, make_campaign, monkeypatch):
    make_campaign(store, "Mugs", products=[shop["products"]["M3"]])

    def no_read(*args, **kwargs):
        raise AssertionError("an anonymous visitor's activity was read")

    monkeypatch.setattr(services.realtime, "recent_activity", no_read)
    with store_scope(store):
        specs = services.running_campaigns(store.pk)
        assert services.predicted_affinities(store, None, specs) == {}
        assert services.predicted_affinities(store, shop["customers"][0].pk, []) == {}


def test_a_campaign_the_database_refuses_is_skipped_for_a_second(store, make_campaign):
    """Spent elsewhere (the row's spend reached the budget, this process's snapshot does not know):
    the charge is refused, nothing is served, and the campaign is left out of this process's
    eligible list for ``REFUSED_SKIP_SECONDS``."""
    campaign = make_campaign(store, "Spent", pricing_model="cpm", bid=Decimal("2.00"), budget=Decimal("10"))
    now = datetime.now(UTC)
    with store_scope(store):
        spec = services.running_campaigns(store.pk, now)[0]
        with unscoped():
            Campaign.objects.filter(pk=campaign.pk).update(spend_micros=spec.budget_micros)
        before = time.monotonic()
        assert services.record_impression(store, spec, None, slot="", score=1.0, now=now) is None
        after = time.monotonic()
        assert before + services.REFUSED_SKIP_SECONDS <= spec.refused_until <= after + services.REFUSED_SKIP_SECONDS
        assert services.eligible_campaigns([spec], now=now, segment_ids=None, shown_today={}) == []
