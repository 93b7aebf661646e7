"""Automatic segments keep their identity across rebuilds, and a campaign never outlives its target
segment as an untargeted one (issue 12 §3).

The reproduction: a campaign aimed at an automatic segment was served to everyone after a rebuild,
because the segments were deleted and recreated and the campaign's link was lost.
"""

from __future__ import annotations

import pytest

from analytics.models import CustomerProfile, Segment
from analytics.segments import build_auto_segments, match_previous_segments
from shop_recs.ads.eligibility import running_campaigns
from shop_recs.ads.models import Campaign, CampaignStatus
from shop_recs.stores.scoping import store_scope
from tests.ads.conftest import make_campaign  # noqa: F401 - the fixture, used by name below
from tests.analytics.test_segments import _populate


def test_matching_follows_the_customers_not_the_cluster_number():
    previous = {10: {1, 2, 3, 4}, 11: {5, 6, 7, 8}, 12: {9, 10}}
    clusters = [{5, 6, 7}, {1, 2, 3, 4, 99}, {50, 51, 52}]  # renumbered, one group gone, one new
    assert match_previous_segments(previous, clusters) == {0: 11, 1: 10}
    assert match_previous_segments({}, clusters) == {}
    # Below the overlap threshold a cluster is a new segment, not a renamed old one.
    assert match_previous_segments({10: {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}}, [{1, 2}]) == {}


@pytest.mark.django_db
def test_a_rebuild_keeps_segment_ids_and_campaign_targeting(store, make_campaign):  # noqa: F811
    _populate(store)
    first = {s.name: s.pk for s in build_auto_segments(store, k=3)}
    with store_scope(store):
        target = Segment.objects.get(pk=first[next(iter(first))])
    campaign = make_campaign(store, "Loyal", segments=[target])
    second = {s.name: s.pk for s in build_auto_segments(store, k=3, seed=7)}  # another seed numbers clusters anew
    assert second == first
    campaign.refresh_from_db()
    with store_scope(store):
        assert list(campaign.segments.values_list("pk", flat=True)) == [target.pk]
        assert campaign.status == CampaignStatus.ACTIVE
        assert CustomerProfile.objects.filter(auto_segment_id=target.pk).count() == target.size


@pytest.mark.django_db
def test_a_campaign_whose_segment_disappears_pauses_instead_of_going_to_everyone(store, make_campaign):  # noqa: F811
    _populate(store)
    segments = build_auto_segments(store, k=3)
    campaign = make_campaign(store, "Targeted", segments=[segments[0]])
    untargeted = make_campaign(store, "Everyone")
    with store_scope(store):
        Segment.objects.filter(pk=segments[0].pk).delete()
        campaign = Campaign.objects.get(pk=campaign.pk)
        assert campaign.status == CampaignStatus.PAUSED
        assert "target segment" in campaign.status_reason and segments[0].name in campaign.status_reason
        assert Campaign.objects.get(pk=untargeted.pk).status == CampaignStatus.ACTIVE
        served = {spec.pk for spec in running_campaigns(store.pk)}
    assert campaign.pk not in served and untargeted.pk in served
