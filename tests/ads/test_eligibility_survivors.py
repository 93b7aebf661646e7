"""The campaign table and pacing of ``shop_recs/ads/eligibility.py``: the mutants that survived.

Written from the survivors of the full mutation run of issue #17 (docs/benchmarks.md, "Mutation
testing"), after this session's rewrite of the snapshot loader (``_load``, ``_promoted_categories``,
``_spec``). Every expected value comes from the documented behaviour (the module's and the
functions' docstrings), worked out by hand, not read off the code.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from shop_recs.ads import eligibility
from shop_recs.ads.eligibility import paced_ppm, running_campaigns, spec_of
from shop_recs.catalog.models import Category
from shop_recs.stores.scoping import store_scope, unscoped

pytestmark = pytest.mark.django_db


# --- paced_ppm ------------------------------------------------------------------------------------


def _utc(h: int, m: int = 0, s: int = 0, us: int = 0) -> datetime:
    return datetime(2026, 3, 10, h, m, s, us, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "ppm"),
    [
        # A quarter of the day: 250,000 millionths.
        (_utc(6), 250_000),
        # 06:30 = 23,400 s of 86,400: 270,833.3 -> 270,833 (the minutes count 60 s each).
        (_utc(6, 30), 270_833),
        # 06:00:30 = 21,630 s: 250,347.2 -> 250,347 (the seconds count).
        (_utc(6, 0, 30), 250_347),
        # 06:00:00.5 = 21,600.5 s: 250,005.8 -> 250,005 (the microseconds count, as a fraction of a second).
        (_utc(6, 0, 0, 500_000), 250_005),
        # 8.64 s is exactly a ten-thousandth of the day: 100 millionths, not 99.
        (_utc(0, 0, 8, 640_000), 100),
        # 0.0864 s is one millionth of the day.
        (_utc(0, 0, 0, 86_400), 1),
    ],
)
def test_paced_share_counts_every_part_of_the_time_of_day(now, ppm):
    assert paced_ppm(now, 0.0) == ppm


def test_the_pacing_day_is_the_utc_day_whatever_the_sites_time_zone(settings):
    """Pacing follows the UTC day ("by now (UTC day)") even when the site's TIME_ZONE (and so the
    process's local time, which Django sets from it) is another zone."""
    settings.TIME_ZONE = "Asia/Tokyo"  # UTC+9, no daylight saving time
    # 06:00 UTC, given in UTC and in Tokyo time: a quarter of the UTC day either way.
    assert paced_ppm(_utc(6), 0.0) == 250_000
    tokyo = timezone.get_fixed_timezone(9 * 60)
    assert paced_ppm(datetime(2026, 3, 10, 15, 0, tzinfo=tokyo), 0.0) == 250_000


# --- spec_of: the cards ---------------------------------------------------------------------------


@pytest.fixture
def promoted(store, make_product, make_campaign):
    """A category with products whose SKUs sort against their pks, plus products outside it."""
    with unscoped():
        kitchen = Category.objects.create(store=store, name="Kitchen", path="Kitchen")
        # A promoted subcategory without products: it adds nothing (and breaks nothing).
        Category.objects.create(store=store, name="Empty", path="Kitchen > Empty", parent=kitchen)
    p = {}
    # Made in this order, so pk order is K1 < K2 < ... ; the SKUs sort the other way ("Z..." first made).
    for name, kwargs in [
        ("ZK1", {"category": kitchen}),
        ("YK2", {"category": kitchen, "is_active": False}),
        ("XK3", {"category": kitchen, "currency": "EUR", "in_stock": False}),
        ("WK4", {"category": kitchen, "image_url": "https://cdn.example/wk4.png", "url": "https://shop.example/wk4"}),
        ("VK5", {"category": kitchen}),
        ("VK6", {"category": kitchen}),
        ("OUT", {}),  # active, in no promoted category
        ("EXP", {}),  # explicitly promoted, outside the category
    ]:
        p[name] = make_product(store, name, **kwargs)
    return {"kitchen": kitchen, "p": p}


def _cards(spec) -> list[str]:
    return [c["sku"] for c in spec.cards]


def test_cards_explicit_first_then_the_categorys_active_products_by_pk(store, make_campaign, promoted):
    """Up to four cards: the explicitly promoted active products first, then the other active promoted
    products, each by pk; an explicit product inside the category is not shown twice."""
    p, kitchen = promoted["p"], promoted["kitchen"]
    camp = make_campaign(store, "A", products=[p["EXP"], p["WK4"]], categories=[kitchen])
    with store_scope(store):
        spec = spec_of(camp, "GBP")
    # Explicit by pk: WK4 (made before EXP), EXP; then the category's active ones by pk, minus WK4:
    # ZK1, (YK2 inactive), XK3 -> four cards.
    assert _cards(spec) == ["WK4", "EXP", "ZK1", "XK3"]
    assert spec.product_ids == frozenset(p[k].pk for k in ("ZK1", "YK2", "XK3", "WK4", "VK5", "VK6", "EXP"))
    # A product without its own currency shows the store's; one with its own keeps it.
    assert [c["currency"] for c in spec.cards] == ["GBP", "GBP", "GBP", "EUR"]
    assert spec.cards[0] == {
        "sku": "WK4",
        "title": "Product WK4",
        "price": "9.99",
        "currency": "GBP",
        "in_stock": True,
        "image_url": "https://cdn.example/wk4.png",
        "url": "https://shop.example/wk4",
    }
    # Empty URLs are null, an out-of-stock product says so (the card fields of every endpoint).
    assert spec.cards[1]["image_url"] is None and spec.cards[1]["url"] is None
    assert [c["in_stock"] for c in spec.cards] == [True, True, True, False]


def test_three_explicit_cards_leave_room_for_one_more(store, make_campaign, promoted):
    p, kitchen = promoted["p"], promoted["kitchen"]
    camp = make_campaign(store, "A", products=[p["EXP"], p["VK5"], p["VK6"]], categories=[kitchen])
    with store_scope(store):
        spec = spec_of(camp, "GBP")
    assert _cards(spec) == ["VK5", "VK6", "EXP", "ZK1"]


def test_inactive_explicit_products_are_promoted_but_not_shown(store, make_campaign, promoted):
    p = promoted["p"]
    camp = make_campaign(store, "A", products=[p["YK2"], p["EXP"]])
    with store_scope(store):
        spec = spec_of(camp, "GBP")
    assert _cards(spec) == ["EXP"]
    assert spec.product_ids == frozenset({p["YK2"].pk, p["EXP"].pk})


def test_never_more_than_four_cards(store, make_campaign, promoted):
    p = promoted["p"]
    camp = make_campaign(store, "A", products=[p[k] for k in ("ZK1", "XK3", "WK4", "VK5", "VK6", "EXP")])
    with store_scope(store):
        spec = spec_of(camp, "GBP")
    assert _cards(spec) == ["ZK1", "XK3", "WK4", "VK5"]
    assert eligibility.CARD_PRODUCTS == 4


def test_spec_of_without_a_currency_leaves_it_empty(store, make_campaign, promoted):
    """``store_currency`` defaults to "" (no currency known): a product without its own shows ""."""
    camp = make_campaign(store, "A", products=[promoted["p"]["EXP"]])
    with store_scope(store):
        spec = spec_of(camp)
    assert [c["currency"] for c in spec.cards] == [""]


# --- the snapshot (_load) -------------------------------------------------------------------------


def test_the_snapshot_has_the_same_cards(store, make_campaign, promoted):
    """The batched snapshot shows the cards ``spec_of`` documents (the same cases as above; the store's
    currency, USD, for products without their own)."""
    p, kitchen = promoted["p"], promoted["kitchen"]
    make_campaign(store, "A", products=[p["EXP"], p["WK4"]], categories=[kitchen])
    make_campaign(store, "B", products=[p["EXP"], p["VK5"], p["VK6"]], categories=[kitchen])
    make_campaign(store, "C", products=[p["YK2"], p["EXP"]])
    make_campaign(store, "D", products=[p[k] for k in ("ZK1", "XK3", "WK4", "VK5", "VK6", "EXP")])
    make_campaign(store, "E", categories=[kitchen])
    specs = {s.name: s for s in running_campaigns(store.pk, timezone.now() + timedelta(seconds=1))}
    assert {name: _cards(s) for name, s in specs.items()} == {
        "A": ["WK4", "EXP", "ZK1", "XK3"],
        "B": ["VK5", "VK6", "EXP", "ZK1"],
        "C": ["EXP"],
        "D": ["ZK1", "XK3", "WK4", "VK5"],
        "E": ["ZK1", "XK3", "WK4", "VK5"],
    }
    kitchen_ids = {p[k].pk for k in ("ZK1", "YK2", "XK3", "WK4", "VK5", "VK6")}
    assert specs["A"].product_ids == kitchen_ids | {p["EXP"].pk}
    assert specs["C"].product_ids == {p["YK2"].pk, p["EXP"].pk}
    assert specs["E"].product_ids == kitchen_ids
    assert [c["currency"] for c in specs["A"].cards] == ["USD", "USD", "USD", "EUR"]
    assert specs["A"].cards[0]["price"] == str(Decimal("9.99"))


def _load_queries(store) -> int:
    eligibility.invalidate_campaigns()
    with CaptureQueriesContext(connection) as ctx:
        running_campaigns(store.pk)
    return len(ctx.captured_queries)


def test_the_snapshot_is_a_fixed_handful_of_queries(store, make_campaign, make_segment, promoted):
    """The docstring's "fixed handful of queries": the campaigns with their segments, categories and products
    (4), the category tree and the promoted categories' products (2, only when a campaign promotes
    categories) and the card products (1), however many campaigns there are."""
    p, kitchen = promoted["p"], promoted["kitchen"]
    seg = make_segment(store, "S")
    make_campaign(store, "A", products=[p["EXP"]], segments=[seg])
    assert _load_queries(store) == 5
    make_campaign(store, "B", products=[p["OUT"]], categories=[kitchen], segments=[seg])
    assert _load_queries(store) == 7
    for name in ("C", "D", "E"):
        make_campaign(store, name, products=[p["EXP"], p["OUT"]], categories=[kitchen], segments=[seg])
    assert _load_queries(store) == 7
    assert {s.name: s.segment_ids for s in running_campaigns(store.pk)} == {n: {seg.pk} for n in "ABCDE"}


# --- eligible_campaigns: the pacing tolerance -----------------------------------------------------


def test_an_explicit_pacing_tolerance_wins_over_the_setting(settings):
    """``pacing_tolerance`` given (even 0.0) is used; only None means ``ADS_PACING_TOLERANCE``."""
    now = _utc(6)  # a quarter of the UTC day
    spec = eligibility.CampaignSpec(
        pk=1,
        name="paced",
        title="paced",
        image_url="",
        landing_url="https://x.example",
        starts_at=now - timedelta(days=1),
        ends_at=now + timedelta(days=1),
        pricing_model="cpm",
        room_micros=300_000,
        budget_micros=10_000_000,
        daily_budget_micros=1_000_000,  # by 06:00 a quarter of it, 250,000, may be spent without tolerance
        spend_micros=0,
        spend_day=None,
        day_spend_micros=0,
        frequency_cap=10,
        weight=1.0,
        segment_ids=frozenset(),
        product_ids=frozenset(),
    )

    def shown(**kw) -> bool:
        return bool(eligibility.eligible_campaigns([spec], now=now, segment_ids=None, **kw))

    settings.ADS_PACING_TOLERANCE = 0.0
    assert not shown()  # 300,000 > 250,000
    assert shown(pacing_tolerance=0.1)  # 350,000 allowed
    settings.ADS_PACING_TOLERANCE = 0.1
    assert shown()
    assert not shown(pacing_tolerance=0.0)


# --- _spec: the pricing model and the room one impression needs ----------------------------------


def test_the_spec_carries_the_pricing_model_and_the_room_it_implies(store, make_campaign):
    """CPM: one impression must leave room for bid / 1000; CPC: for one click, the bid."""
    make_campaign(store, "per mille", pricing_model="cpm", bid=Decimal("2.50"))
    make_campaign(store, "per click", pricing_model="cpc", bid=Decimal("0.40"))
    specs = {s.name: s for s in running_campaigns(store.pk)}
    assert (specs["per mille"].pricing_model, specs["per mille"].room_micros) == ("cpm", 2_500)
    assert (specs["per click"].pricing_model, specs["per click"].room_micros) == ("cpc", 400_000)
