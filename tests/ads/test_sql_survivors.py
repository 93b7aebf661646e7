"""``shop_recs.ads.sql`` called directly: the exact counters, costs and rows each charge returns and
writes, on both paths of ``charge_impression``, written from the survivors of the PostgreSQL mutation
run (docs/benchmarks.md § Mutation testing).

``charge_impression`` has two paths: on PostgreSQL outside a transaction, one statement
(data-modifying CTEs, autocommit); elsewhere (SQLite, or a caller already inside a transaction) the
same three statements in a transaction. The ``path`` parameter runs a test both ways: "transaction"
wraps the call in ``transaction.atomic()`` (the three statements on every database); "autocommit" calls
it from a transactional test, outside any transaction: the one statement on PostgreSQL, the three
statements in their own transaction on SQLite (the embedded mode serves ads that way). The tests that
only make sense on PostgreSQL call ``require_postgres`` (skipped on a developer's SQLite, a failure
under ``CI=true``).
The services' tests reach these functions only through ``serve_ads`` and ``record_click``, which drop
some of what they return (a click's cost) and never look at the impression row's columns.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from analytics.models import CustomerProfile, Segment
from shop_recs.ads import sql
from shop_recs.ads.models import Campaign, DailyCap, Impression
from shop_recs.stores.scoping import unscoped
from tests.conftest import require_postgres

T = datetime(2030, 3, 4, 12, 0, tzinfo=UTC)
TODAY, YESTERDAY = T.date(), T.date() - timedelta(days=1)
FULL = 1_000_000  # paced_ppm: the whole daily budget may be spent

TX = pytest.param("transaction", marks=pytest.mark.django_db, id="transaction")
AUTO = pytest.param("autocommit", marks=pytest.mark.django_db(transaction=True), id="autocommit")


@pytest.fixture(params=[TX, AUTO])
def path(request) -> str:
    return request.param


def _one_statement(path: str) -> bool:
    return path == "autocommit" and connection.vendor == "postgresql"


def _charge(path: str, store, campaign, customer=None, **kwargs) -> tuple[object, list[str]]:
    """``sql.charge_impression`` on the given path; returns its result and the SQL it ran (no savepoints)."""
    kwargs.setdefault("cap", 10)
    kwargs.setdefault("now", T)
    kwargs.setdefault("day", TODAY)
    kwargs.setdefault("paced_ppm", FULL)
    kwargs.setdefault("slot", "home")
    kwargs.setdefault("score", 0.5)
    customer_id = customer.pk if customer is not None else None
    with CaptureQueriesContext(connection) as queries:
        if path == "transaction":
            with transaction.atomic():
                out = sql.charge_impression(store.pk, campaign.pk, customer_id, **kwargs)
        else:
            assert not connection.in_atomic_block
            out = sql.charge_impression(store.pk, campaign.pk, customer_id, **kwargs)
    control = ("SAVEPOINT", "RELEASE", "ROLLBACK", "BEGIN", "COMMIT")  # transaction control, not the charge
    ran = [q["sql"] for q in queries.captured_queries if not q["sql"].upper().startswith(control)]
    return out, ran


def _campaign(make_campaign, store, **kwargs) -> Campaign:
    kwargs.setdefault("bid", Decimal("10.00"))  # CPM 10.00: 0.01 = 10,000 micro-units per impression
    kwargs.setdefault("budget", Decimal("1.00"))
    kwargs.setdefault("starts_at", T - timedelta(days=3))
    kwargs.setdefault("ends_at", T + timedelta(days=3))
    return make_campaign(store, "Ad", **kwargs)


def _row(campaign) -> Campaign:
    with unscoped():
        return Campaign.objects.get(pk=campaign.pk)


def _set_spend(campaign, *, spend: int, day: date | None, day_spend: int) -> None:
    with unscoped():
        Campaign.objects.filter(pk=campaign.pk).update(spend_micros=spend, spend_day=day, day_spend_micros=day_spend)


def _cap(campaign, customer, day: date = TODAY) -> int:
    """Today's frequency counter (0 when there is no row: a refused first impression may leave either)."""
    with unscoped():
        row = DailyCap.objects.filter(campaign=campaign, customer=customer, day=day).first()
    return row.count if row else 0


def _impressions(campaign) -> list[Impression]:
    with unscoped():
        return list(Impression.objects.filter(campaign=campaign).order_by("pk"))


def test_a_charge_returns_and_writes_the_exact_counters(path, store, make_campaign, make_customer):
    """Spent 0.05 yesterday: today's charge adds 0.01 to the total and starts today's spend at 0.01."""
    cust = make_customer(store, "C1")
    c = _campaign(make_campaign, store)
    _set_spend(c, spend=50_000, day=YESTERDAY, day_spend=50_000)

    out, ran = _charge(path, store, c, cust, cap=2, score=0.123456789)
    assert isinstance(out, tuple)
    imp_id, counters = out
    assert isinstance(imp_id, uuid.UUID)
    assert counters == sql.Charged(spend_micros=60_000, day_spend_micros=10_000, cost_micros=10_000)
    # The documented round trips: one statement on PostgreSQL, three (cap, charge, INSERT) in a transaction.
    assert len(ran) == (1 if _one_statement(path) else 3)
    row = _row(c)
    assert (row.spend_micros, row.day_spend_micros, row.spend_day, row.impressions_served) == (
        60_000,
        10_000,
        TODAY,
        1,
    )
    [imp] = _impressions(c)
    assert imp.impression_id == imp_id
    assert (imp.store_id, imp.customer_id, imp.slot, imp.served_at, imp.clicked_at, imp.cost_micros) == (
        store.pk,
        cust.pk,
        "home",
        T,
        None,
        10_000,
    )
    assert imp.score == pytest.approx(0.123457, abs=1e-9)  # rounded to 6 decimals, as documented
    assert _cap(c, cust) == 1

    out, _ = _charge(path, store, c, cust, cap=2)
    assert out[1] == sql.Charged(spend_micros=70_000, day_spend_micros=20_000, cost_micros=10_000)
    assert _cap(c, cust) == 2

    # The cap (2) is reached: refused, and nothing else moves.
    out, _ = _charge(path, store, c, cust, cap=2)
    assert out == sql.REFUSED_CAP
    row = _row(c)
    assert (row.spend_micros, row.day_spend_micros, row.impressions_served) == (70_000, 20_000, 2)
    assert len(_impressions(c)) == 2 and _cap(c, cust) == 2


def test_an_anonymous_visitor_is_charged_without_a_cap_row(path, store, make_campaign):
    c = _campaign(make_campaign, store, budget=Decimal("0.02"))
    for spent in (10_000, 20_000):
        out, ran = _charge(path, store, c, None, slot="", score=1.0)
        assert out[1] == sql.Charged(spend_micros=spent, day_spend_micros=spent, cost_micros=10_000)
        assert len(ran) == (1 if _one_statement(path) else 2)
    # The budget (0.02) is spent: the campaign refuses; an anonymous visitor has no cap to blame.
    out, _ = _charge(path, store, c, None)
    assert out == sql.REFUSED_CAMPAIGN
    assert [i.customer_id for i in _impressions(c)] == [None, None]
    with unscoped():
        assert not DailyCap.objects.filter(campaign=c).exists()
    assert _row(c).spend_micros == 20_000


def test_a_known_customer_refused_by_the_campaign_keeps_the_cap_count(path, store, make_campaign, make_customer):
    """The campaign refuses (budget spent) after the customer's cap passed: the cap counter ends as before."""
    cust = make_customer(store, "C1")
    c = _campaign(make_campaign, store, budget=Decimal("0.01"))
    assert isinstance(_charge(path, store, c, cust, cap=5)[0], tuple)
    out, ran = _charge(path, store, c, cust, cap=5)
    assert out == sql.REFUSED_CAMPAIGN
    # One statement and the one that takes the cap increment back; or the cap upsert and the refused charge.
    assert len(ran) == 2
    assert _cap(c, cust) == 1
    # A customer refused on their first impression of the day has no count either.
    other = make_customer(store, "C2")
    assert _charge(path, store, c, other, cap=5)[0] == sql.REFUSED_CAMPAIGN
    assert _cap(c, other) == 0
    assert _row(c).spend_micros == 10_000 and len(_impressions(c)) == 1


def test_a_cap_of_zero_refuses_the_first_impression(path, store, make_campaign, make_customer):
    cust = make_customer(store, "C1")
    c = _campaign(make_campaign, store)
    assert _charge(path, store, c, cust, cap=0)[0] == sql.REFUSED_CAP
    assert _cap(c, cust) == 0 and _row(c).spend_micros == 0 and not _impressions(c)


def test_the_paced_daily_budget_counts_today_only(path, store, make_campaign):
    """Daily 0.10 paced to half (500,000 ppm) = 0.05 by now; yesterday's 0.09 does not count today."""
    c = _campaign(make_campaign, store, budget=Decimal("50.00"), daily_budget=Decimal("0.10"))
    _set_spend(c, spend=90_000, day=YESTERDAY, day_spend=90_000)
    served = [_charge(path, store, c, None, paced_ppm=500_000)[0] for _ in range(6)]
    assert [s[1].day_spend_micros for s in served[:5]] == [10_000, 20_000, 30_000, 40_000, 50_000]
    assert served[5] == sql.REFUSED_CAMPAIGN
    row = _row(c)
    assert (row.spend_micros, row.day_spend_micros, row.spend_day) == (140_000, 50_000, TODAY)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("asynchronous", [True, False])
def test_the_one_statement_asks_for_an_asynchronous_commit_only_when_set(
    asynchronous, settings, store, make_campaign, make_customer
):
    """``ADS_CHARGE_ASYNC_COMMIT``: the statement switches its own transaction to an asynchronous commit."""
    require_postgres()
    settings.ADS_CHARGE_ASYNC_COMMIT = asynchronous
    c = _campaign(make_campaign, store)
    before = _synchronous_commit()
    for customer in (None, make_customer(store, "C1")):
        out, [statement] = _charge("autocommit", store, c, customer)
        assert out[1].cost_micros == 10_000
        # SQL names and keywords are case-insensitive: so is this check.
        assert ("set_config('synchronous_commit', 'off', true)" in statement.lower()) is asynchronous
    # Local to the charge's own transaction: this connection's setting is untouched.
    assert _synchronous_commit() == before


def _synchronous_commit() -> str:
    with connection.cursor() as cur:
        cur.execute("SHOW synchronous_commit")
        return cur.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_inside_a_callers_transaction_the_charge_never_touches_its_commit_mode(store, make_campaign):
    """On PostgreSQL inside ``atomic()`` the three statements run, so the caller's transaction keeps its
    synchronous commit (the one statement's ``set_config(…, true)`` would last until the caller commits)."""
    require_postgres()
    c = _campaign(make_campaign, store)
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SET LOCAL synchronous_commit = on")  # whatever the server's default
        out = sql.charge_impression(store.pk, c.pk, None, cap=1, now=T, day=TODAY, paced_ppm=FULL, slot="", score=1.0)
        assert out[1].cost_micros == 10_000
        cur.execute("SHOW synchronous_commit")
        assert cur.fetchone()[0] == "on"


# --- clicks -------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_clicks_return_found_first_and_the_exact_cost(store, other_store, make_campaign, make_customer):
    """CPC 0.50, daily 1.00, total 2.00: two clicks a day are charged, a third is free; the next day counts anew."""
    c = _campaign(
        make_campaign,
        store,
        pricing_model="cpc",
        bid=Decimal("0.50"),
        budget=Decimal("2.00"),
        daily_budget=Decimal("1.00"),
    )
    ids = []
    for _ in range(5):
        with transaction.atomic():
            imp_id, counters = sql.charge_impression(
                store.pk, c.pk, None, cap=1, now=T, day=TODAY, paced_ppm=FULL, slot="", score=1.0
            )
        assert counters.cost_micros == 0  # a CPC impression is free
        ids.append(imp_id)
    later = T + timedelta(minutes=5)

    assert sql.charge_click(store.pk, ids[0], now=later) == (True, True, 500_000)
    assert sql.charge_click(store.pk, ids[0], now=later) == (True, False, 0)  # a repeat: found, free
    assert sql.charge_click(other_store.pk, ids[1], now=later) == (False, False, 0)  # another store's
    assert sql.charge_click(store.pk, uuid.uuid4(), now=later) == (False, False, 0)
    assert sql.charge_click(store.pk, ids[1], now=later) == (True, True, 500_000)
    row = _row(c)
    assert (row.spend_micros, row.day_spend_micros, row.spend_day) == (1_000_000, 1_000_000, TODAY)
    # Today's budget (1.00) is spent: the click is recorded, free.
    assert sql.charge_click(store.pk, ids[2], now=later) == (True, True, 0)
    # The next day starts from nothing spent today.
    tomorrow = T + timedelta(days=1)
    assert sql.charge_click(store.pk, ids[3], now=tomorrow) == (True, True, 500_000)
    row = _row(c)
    assert (row.spend_micros, row.day_spend_micros, row.spend_day) == (1_500_000, 500_000, tomorrow.date())
    imps = {i.impression_id: i for i in _impressions(c)}
    assert [imps[i].cost_micros for i in ids] == [500_000, 500_000, 0, 500_000, 0]
    assert [imps[i].clicked_at for i in ids] == [later, later, later, tomorrow, None]


@pytest.mark.django_db
def test_a_cpm_click_is_free_and_keeps_the_impressions_cost(store, make_campaign):
    c = _campaign(make_campaign, store)
    with transaction.atomic():
        imp_id, _ = sql.charge_impression(
            store.pk, c.pk, None, cap=1, now=T, day=TODAY, paced_ppm=FULL, slot="", score=1.0
        )
    assert sql.charge_click(store.pk, imp_id, now=T) == (True, True, 0)
    [imp] = _impressions(c)
    assert (imp.cost_micros, imp.clicked_at) == (10_000, T)
    assert _row(c).spend_micros == 10_000


# --- the visitor's targeting rows ---------------------------------------------------------------------


def _segments(value) -> list[int]:
    return json.loads(value) if isinstance(value, str) else list(value)  # JSON text on SQLite


@pytest.mark.django_db
def test_visitor_rows_are_this_customers_profile_and_todays_counters(store, other_store, make_campaign, make_customer):
    cust, other = make_customer(store, "C1"), make_customer(store, "C2")
    a, b = _campaign(make_campaign, store), _campaign(make_campaign, store)
    with unscoped():
        auto = Segment.objects.create(store=store, name="Auto", kind="auto", rules={})
        CustomerProfile.objects.create(store=store, customer=cust, segment_ids=[3, 5], auto_segment=auto)
        for campaign, customer, day, count in (
            (a, cust, TODAY, 2),
            (b, cust, TODAY, 1),
            (a, cust, YESTERDAY, 9),  # another day
            (a, other, TODAY, 4),  # another customer
        ):
            DailyCap.objects.create(store=store, campaign=campaign, customer=customer, day=day, count=count)

    rows = sorted(sql.visitor_rows(store.pk, cust.pk, TODAY), key=lambda r: (r[0], r[3] or 0))
    assert [(r[0], _segments(r[1]), r[2], r[3], r[4]) for r in rows[:1]] == [(0, [3, 5], auto.pk, None, None)]
    assert [tuple(r) for r in rows[1:]] == [(1, None, None, a.pk, 2), (1, None, None, b.pk, 1)]
    # Without a profile: only the counters. Another store sees nothing of this customer.
    assert [tuple(r) for r in sql.visitor_rows(store.pk, other.pk, TODAY)] == [(1, None, None, a.pk, 4)]
    assert sql.visitor_rows(other_store.pk, cust.pk, TODAY) == []
