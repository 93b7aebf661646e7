"""The per-process memory of known customers' targeting (``ads.visitors``, issue #15) and the batched
campaign snapshot (``eligibility._load``): a known customer's repeat request reads no segments, the
frequency cap stays exact without reading it, and the snapshot equals ``spec_of`` per campaign."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

import pytest
from django.utils import timezone

from analytics.models import CustomerProfile
from shop_recs.ads import eligibility, services, sql, visitors
from shop_recs.ads.models import Campaign, CampaignStatus, DailyCap, Impression
from shop_recs.catalog.models import Category
from shop_recs.stores.scoping import store_scope, unscoped

pytestmark = pytest.mark.django_db


@pytest.fixture
def counted(monkeypatch):
    """Calls of the segment read and of the charging statement."""
    calls = {"visitor_rows": 0, "charge": 0}
    real_rows, real_charge = sql.visitor_rows, sql.charge_impression

    def rows(*a, **kw):
        calls["visitor_rows"] += 1
        return real_rows(*a, **kw)

    def charge(*a, **kw):
        calls["charge"] += 1
        return real_charge(*a, **kw)

    monkeypatch.setattr(sql, "visitor_rows", rows)
    monkeypatch.setattr(sql, "charge_impression", charge)
    return calls


def serve(store, who, n=5, now=None) -> list[int]:
    with store_scope(store):
        return [a["campaign_id"] for a in services.serve_ads(store, who, n=n, now=now).ads]


def test_a_known_customers_repeat_request_reads_no_segments(store, shop, make_campaign, counted):
    c = make_campaign(store, "C", products=[shop["products"]["M0"]])
    assert serve(store, "C0") == [c.pk]
    assert serve(store, "C0") == [c.pk]
    assert serve(store, "C0") == [c.pk]
    assert counted["visitor_rows"] == 1
    assert counted["charge"] == 3
    assert serve(store, None) == [c.pk]  # anonymous: never read
    assert counted["visitor_rows"] == 1


def test_ttl_zero_reads_every_request(store, shop, make_campaign, counted, settings):
    settings.ADS_VISITOR_CACHE_TTL = 0
    make_campaign(store, "C", products=[shop["products"]["M0"]])
    serve(store, "C0")
    serve(store, "C0")
    assert counted["visitor_rows"] == 2


def test_cap_is_exact_with_counters_this_process_never_saw(store, shop, make_campaign, counted):
    """Another worker served the customer meanwhile: this process's counter is behind, the charging
    statement refuses, and the refusal is remembered so the next request skips without a charge."""
    c = make_campaign(store, "C", products=[shop["products"]["M0"]], frequency_cap=2)
    customer = shop["customers"][0]
    assert serve(store, "C0") == [c.pk]
    with unscoped():  # the other worker's impression of today
        DailyCap.objects.filter(campaign=c, customer=customer).update(count=2)
    assert serve(store, "C0") == []
    assert counted["charge"] == 2
    assert serve(store, "C0") == []
    assert counted["charge"] == 2  # known to be capped here now: no refused round trip
    with unscoped():
        assert DailyCap.objects.get(campaign=c, customer=customer).count == 2
        assert Impression.objects.filter(campaign=c).count() == 1


def test_cap_reached_in_this_process_costs_no_refused_charge(store, shop, make_campaign, counted):
    c = make_campaign(store, "C", products=[shop["products"]["M0"]], frequency_cap=2)
    assert [serve(store, "C0") for _ in range(4)] == [[c.pk], [c.pk], [], []]
    assert counted["charge"] == 2
    assert counted["visitor_rows"] == 1


def test_counters_start_over_on_a_new_day(store, shop, make_campaign):
    c = make_campaign(store, "C", products=[shop["products"]["M0"]], frequency_cap=1)
    assert serve(store, "C0") == [c.pk]
    assert serve(store, "C0") == []
    assert serve(store, "C0", now=timezone.now() + timedelta(days=1)) == [c.pk]


def test_counters_loaded_with_the_segments(store, shop, make_campaign, counted):
    """A miss reads today's counters with the segments: a capped campaign costs no charge."""
    c = make_campaign(store, "C", products=[shop["products"]["M0"]], frequency_cap=1)
    with unscoped():
        DailyCap.objects.create(
            store=store, campaign=c, customer=shop["customers"][0], day=timezone.now().date(), count=1
        )
    assert serve(store, "C0") == []
    assert counted == {"visitor_rows": 1, "charge": 0}


def test_profile_save_in_this_process_applies_at_once(store, shop, make_campaign, make_segment):
    seg = make_segment(store, "Mug lovers", [])
    c = make_campaign(store, "T", products=[shop["products"]["M0"]], segments=[seg])
    assert serve(store, "C0") == []
    make_segment(store, "Other", [shop["customers"][0]])  # saves C0's profile: the entry is dropped
    with unscoped():
        profile = shop["customers"][0].profile
        profile.segment_ids = [*profile.segment_ids, seg.pk]
        profile.save()
    assert serve(store, "C0") == [c.pk]


def test_a_write_without_signals_shows_within_the_ttl(store, shop, make_campaign, make_segment):
    """COPY or ``update()`` (the segment jobs) send no signal: the entry answers until the TTL."""
    seg = make_segment(store, "Mug lovers", [shop["customers"][0]])
    c = make_campaign(store, "T", products=[shop["products"]["M0"]], segments=[seg])
    assert serve(store, "C0") == [c.pk]
    with unscoped():
        CustomerProfile.objects.filter(customer=shop["customers"][0]).update(segment_ids=[])
    assert serve(store, "C0") == [c.pk]  # stale, within the TTL
    entry = visitors._entries[(store.pk, shop["customers"][0].pk)]
    entry.loaded -= visitors.ttl()
    assert serve(store, "C0") == []


def test_segment_save_drops_the_stores_entries(store, shop, make_segment):
    seg = make_segment(store, "S", [])
    visitors.targeting(store.pk, shop["customers"][0].pk, date.today())
    assert visitors._entries
    with unscoped():
        seg.name = "renamed"
        seg.save()
    assert not visitors._entries


def test_invalidate_and_the_bound(store, other_store, monkeypatch):
    for pk in (1, 2):
        visitors._entries[(store.pk, pk)] = visitors.Targeting(0.0, frozenset(), date.today())
    visitors._entries[(other_store.pk, 1)] = visitors.Targeting(0.0, frozenset(), date.today())
    visitors.invalidate(store.pk, [1])
    assert set(visitors._entries) == {(store.pk, 2), (other_store.pk, 1)}
    visitors.invalidate(store.pk)
    assert set(visitors._entries) == {(other_store.pk, 1)}
    visitors.invalidate()
    assert not visitors._entries
    monkeypatch.setattr(visitors, "MAX_ENTRIES", 4)
    for pk in range(10):
        visitors.targeting(store.pk, 10_000 + pk, date.today())
        assert len(visitors._entries) <= 4
    assert (store.pk, 10_009) in visitors._entries


def test_notes_touch_only_known_entries_and_never_lower_a_count():
    day = date(2026, 1, 2)
    visitors.note_served(1, 1, 7, day)  # no entry: nothing to do
    assert (1, 1) not in visitors._entries
    visitors._entries[(1, 1)] = visitors.Targeting(0.0, frozenset(), day, {7: 5})
    visitors.note_capped(1, 1, 7, 3, day)
    assert visitors._entries[(1, 1)].shown_today == {7: 5}
    visitors.note_served(1, 1, 7, day)
    visitors.note_capped(1, 1, 8, 2, day)
    assert visitors._entries[(1, 1)].shown_today == {7: 6, 8: 2}
    visitors.note_served(1, 1, 7, day + timedelta(days=1))
    assert visitors._entries[(1, 1)].shown_today == {7: 1}


def test_the_affinity_lookup_is_kept_on_the_customers_memo(store, shop, make_campaign, monkeypatch):
    mugs, shirts = [shop["products"]["M0"]], [shop["products"]["S0"]]
    make_campaign(store, "Mugs", products=mugs)
    make_campaign(store, "Shirts", products=shirts)
    calls = []
    real = services.serving.candidate_affinities
    monkeypatch.setattr(services.serving, "candidate_affinities", lambda *a: calls.append(1) or real(*a))
    with store_scope(store):
        specs = eligibility.running_campaigns(store.pk)
        memo: dict = {}
        customer = shop["customers"][0]
        first = services.predicted_affinities(store, customer.pk, specs, memo=memo)
        second = services.predicted_affinities(store, customer.pk, specs, memo=memo)
        fresh = services.predicted_affinities(store, customer.pk, specs)
    assert first == second == fresh
    assert first[specs[0].pk] != first[specs[1].pk]
    assert len(calls) == 2  # the memo answered the second call


def test_the_batched_snapshot_equals_spec_of_per_campaign(store, make_campaign, make_product):
    with unscoped():
        home = Category.objects.create(store=store, name="Home", path="Home")
        kitchen = Category.objects.create(store=store, name="Kitchen", path="Home > Kitchen", parent=home)
        homeware = Category.objects.create(store=store, name="Homeware", path="Homeware")
    p = {}
    for i in range(12):
        cat = (home, kitchen, homeware, None)[i % 4]
        p[i] = make_product(store, f"P{i}", category=cat, is_active=i not in (1, 6))
    make_campaign(store, "explicit, some inactive", products=[p[1], p[6], p[3], p[11]])
    make_campaign(store, "more than four explicit", products=[p[i] for i in (11, 10, 9, 8, 7, 5)])
    make_campaign(store, "subtree", categories=[home])
    make_campaign(store, "both", products=[p[3]], categories=[kitchen])
    make_campaign(store, "no match for a prefix", categories=[homeware])
    make_campaign(store, "nothing promoted")
    now = timezone.now()
    with store_scope(store):
        batched = eligibility._load(store.pk, now)
        rows = Campaign.objects.filter(status=CampaignStatus.ACTIVE, ends_at__gt=now).select_related("store")
        one_by_one = [eligibility.spec_of(c, c.store.currency) for c in rows]
    assert len(batched) == 6
    key = {s.pk: dataclasses.asdict(s) for s in one_by_one}
    for spec in batched:
        assert dataclasses.asdict(spec) == key[spec.pk], spec.name
    by_name = {s.name: s for s in batched}
    assert by_name["subtree"].product_ids == frozenset(p[i].pk for i in range(12) if i % 4 in (0, 1))
    assert [c["sku"] for c in by_name["more than four explicit"].cards] == ["P5", "P7", "P8", "P9"]
    assert [c["sku"] for c in by_name["explicit, some inactive"].cards] == ["P3", "P11"]
