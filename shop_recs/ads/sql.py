"""Ads' raw SQL (allow-listed in ``tests/test_raw_sql.py``): charging impressions and clicks exactly.

Every function takes ``store_id`` and filters by it (raw SQL bypasses django-scopes). Only quoted
identifiers are interpolated; every value is a parameter, prepared by the model field it is
compared with (a UUID is 32 hex digits and a datetime naive UTC text on SQLite).

**Exactness.** Money is charged by one conditional ``UPDATE … RETURNING`` on the campaign row::

    UPDATE ads_campaign SET spend_micros = spend_micros + <cost>, day_spend_micros = …, spend_day = today
     WHERE id = … AND store_id = … AND status = 'active' AND starts_at <= now AND ends_at > now
       AND spend_micros + <room> <= ROUND(budget * 1000000)
       AND (daily_budget IS NULL OR <today's spend> + <room> <= ROUND(daily_budget * <paced ppm>))
    RETURNING spend_micros, day_spend_micros, <cost>

``<cost>`` is what this impression costs (CPM: bid × 1000 micro-units, i.e. bid / 1000 per
impression; CPC: 0) and ``<room>`` what the campaign must still be able to pay (CPM: the impression;
CPC: one click, bid × 10⁶), both computed from the row itself, so a bid edited concurrently is never
charged at a stale price. Under READ COMMITTED a concurrent UPDATE of the same row waits for the row
lock and re-evaluates the WHERE on the committed row (PostgreSQL's EvalPlanQual; SQLite serialises
writers), so the spend can never pass the budget. The frequency cap is the same idea on the
(campaign, customer, day) row: ``INSERT … ON CONFLICT DO UPDATE SET count = count + 1 WHERE count <
cap RETURNING``.

**Round trips.** On PostgreSQL one statement does everything (the cap upsert, the charge that
requires it, the impression INSERT that requires the charge: data-modifying CTEs) — one round trip,
autocommit, no BEGIN/COMMIT. The one case it cannot undo inside the statement is "the cap row was
incremented but the campaign refused the charge" (budget spent, paced out or paused since the
snapshot was read): :func:`charge_impression` then takes the increment back with a second
statement. In between the counter is one too high, which can only refuse an impression, never
allow one too many. SQLite (no data-modifying CTEs) runs the same three statements in a transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime

from django.conf import settings
from django.db import connection, transaction

from shop_recs.activity.models import Customer
from shop_recs.ads.models import Campaign, DailyCap, Impression


def _qn(name: str) -> str:
    return connection.ops.quote_name(name)


def _prep(model: type, field: str, value: object) -> object:
    return model._meta.get_field(field).get_db_prep_value(value, connection)


#: What one impression costs (CPM: bid/1000 per impression = bid x 1000 micro-units; CPC: nothing).
COST_SQL = "(CASE WHEN pricing_model = 'cpm' THEN CAST(ROUND(bid * 1000) AS BIGINT) ELSE 0 END)"
#: What the campaign must still be able to pay for this impression to be served (CPC: one click).
ROOM_SQL = (
    "(CASE WHEN pricing_model = 'cpm' THEN CAST(ROUND(bid * 1000) AS BIGINT) "
    "ELSE CAST(ROUND(bid * 1000000) AS BIGINT) END)"
)
#: What one click costs (CPC only; a CPM campaign's click is free: it paid for the impression).
CLICK_SQL = "CAST(ROUND(bid * 1000000) AS BIGINT)"
#: Today's spend as the row knows it (a row last charged on another day has spent nothing today).
TODAY_SQL = "(CASE WHEN spend_day = %s THEN day_spend_micros ELSE 0 END)"


#: Why a charge was refused: the customer's frequency cap, or the campaign (budget, pace, status, dates).
REFUSED_CAP = "cap"
REFUSED_CAMPAIGN = "campaign"


@dataclass(frozen=True)
class Charged:
    """What a successful charge returned: the campaign's counters after it, and this event's cost."""

    spend_micros: int
    day_spend_micros: int
    cost_micros: int


def _charge_update_sql() -> tuple[str, list[str]]:
    """The campaign UPDATE and the order of its parameters (names, filled by the caller)."""
    table = _qn(Campaign._meta.db_table)
    sql = (
        f"UPDATE {table} SET spend_micros = spend_micros + {COST_SQL}, "  # noqa: S608
        f"day_spend_micros = {TODAY_SQL} + {COST_SQL}, spend_day = %s, "
        f"impressions_served = impressions_served + 1 "
        f"WHERE id = %s AND store_id = %s AND status = 'active' AND starts_at <= %s AND ends_at > %s "
        f"AND spend_micros + {ROOM_SQL} <= ROUND(budget * 1000000) "
        f"AND (daily_budget IS NULL OR {TODAY_SQL} + {ROOM_SQL} <= ROUND(daily_budget * %s)) "
    )
    return sql, ["day", "day", "campaign", "store", "now", "now", "day", "ppm"]


def _impression_columns() -> str:
    return "store_id, impression_id, campaign_id, customer_id, slot, score, served_at, clicked_at, cost_micros"


def charge_impression(
    store_id: int,
    campaign_id: int,
    customer_id: int | None,
    *,
    cap: int,
    now: datetime,
    day: date,
    paced_ppm: int,
    slot: str,
    score: float,
) -> tuple[uuid.UUID, Charged] | str:
    """Charge the budget (and the customer's daily cap) and record the impression, or change nothing.

    ``paced_ppm``: the share of the daily budget that may be spent by now, in millionths (pacing;
    1,000,000 = the whole daily budget). Returns ``(impression_id, counters)``, or why nothing was
    charged: :data:`REFUSED_CAP` (this customer's cap) or :data:`REFUSED_CAMPAIGN` (the budget, the
    paced daily budget, the status or the dates).
    """
    impression_id = uuid.uuid4()
    values = {
        "day": _prep(Campaign, "spend_day", day),
        "now": _prep(Campaign, "starts_at", now),
        "campaign": campaign_id,
        "store": store_id,
        "ppm": int(paced_ppm),
    }
    imp_values = [
        store_id,
        _prep(Impression, "impression_id", impression_id),
        campaign_id,
        customer_id,
        slot,
        round(float(score), 6),
        _prep(Impression, "served_at", now),
    ]
    update, names = _charge_update_sql()
    update_params = [values[n] for n in names]
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        row = _charge_in_one_statement(store_id, customer_id, cap, values, update, update_params, imp_values)
    else:
        row = _charge_in_a_transaction(store_id, customer_id, cap, values, update, update_params, imp_values)
    return row if isinstance(row, str) else (impression_id, row)


def _cap_upsert_sql() -> str:
    table = _qn(DailyCap._meta.db_table)
    return (
        # SELECT … WHERE, not VALUES: a cap of 0 refuses even the day's first impression (SQLite needs
        # the WHERE anyway to parse ON CONFLICT after a SELECT).
        f"INSERT INTO {table} (store_id, campaign_id, customer_id, day, count) SELECT %s, %s, %s, %s, 1 "  # noqa: S608
        f"WHERE %s > 0 ON CONFLICT (campaign_id, customer_id, day) DO UPDATE SET count = {table}.count + 1 "
        f"WHERE {table}.count < %s RETURNING id"
    )


def _charge_in_one_statement(
    store_id: int,
    customer_id: int | None,
    cap: int,
    values: dict,
    update: str,
    update_params: list,
    imp_values: list,
) -> Charged | str:
    imp_table = _qn(Impression._meta.db_table)
    placeholders = ", ".join(["%s"] * len(imp_values))
    insert = (
        f"INSERT INTO {imp_table} ({_impression_columns()}) "  # noqa: S608
        f"SELECT {placeholders}, NULL, cost FROM charged RETURNING id"
    )
    returning = f"RETURNING spend_micros, day_spend_micros, {COST_SQL} AS cost"
    if customer_id is None:
        sql = (
            f"WITH charged AS ({update} {returning}), imp AS ({insert}) "  # noqa: S608 - identifiers only
            f"SELECT 1, c.spend_micros, c.day_spend_micros, c.cost "
            f"FROM {_commit_mode()} one LEFT JOIN charged c ON true"
        )
        params = [*update_params, *imp_values]
    else:
        sql = (
            f"WITH cap AS ({_cap_upsert_sql()}), "  # noqa: S608 - identifiers only
            f"charged AS ({update} AND EXISTS (SELECT 1 FROM cap) {returning}), "
            f"imp AS ({insert}) "
            f"SELECT (SELECT count(*) FROM cap), c.spend_micros, c.day_spend_micros, c.cost "
            f"FROM {_commit_mode()} one LEFT JOIN charged c ON true"
        )
        cap_params = [store_id, values["campaign"], customer_id, values["day"], cap, cap]
        params = [*cap_params, *update_params, *imp_values]
    with connection.cursor() as cur:
        cur.execute(sql, params)
        capped, spend, day_spend, cost = cur.fetchone()
    if spend is None:
        if customer_id is None:
            return REFUSED_CAMPAIGN
        if not capped:
            return REFUSED_CAP
        _uncount_cap(store_id, values["campaign"], customer_id, values["day"])
        return REFUSED_CAMPAIGN
    return Charged(int(spend), int(day_spend), int(cost))


def _commit_mode() -> str:
    """The one-row FROM of the charging statement; with ``ADS_CHARGE_ASYNC_COMMIT`` it also switches
    this statement's own transaction to an asynchronous commit (``set_config(…, true)`` is local to it).

    Why: the commit's WAL flush was 9-30 ms on the benchmark machine against 0.3-0.5 ms for the
    UPDATE itself, and every impression of a campaign queues on that campaign's row lock until the
    flush. Asynchronous commit is crash-safe (no corruption); a crash of PostgreSQL may lose the last
    moments of committed charges *together with their impressions* (one transaction), so spend and
    impression rows stay consistent and the budget is never passed; shown ads are under-billed, never
    over-billed. Set ``ADS_CHARGE_ASYNC_COMMIT=0`` to wait for the flush on every charge.
    """
    if settings.ADS_CHARGE_ASYNC_COMMIT:
        return "(SELECT set_config('synchronous_commit', 'off', true))"
    return "(SELECT 1)"


def _uncount_cap(store_id: int, campaign_id: int, customer_id: int, day: object) -> None:
    """Take back a cap increment whose charge was refused (see the module docstring)."""
    table = _qn(DailyCap._meta.db_table)
    with connection.cursor() as cur:
        cur.execute(
            f"UPDATE {table} SET count = count - 1 WHERE store_id = %s AND campaign_id = %s "  # noqa: S608
            f"AND customer_id = %s AND day = %s AND count > 0",
            [store_id, campaign_id, customer_id, day],
        )


def _charge_in_a_transaction(
    store_id: int,
    customer_id: int | None,
    cap: int,
    values: dict,
    update: str,
    update_params: list,
    imp_values: list,
) -> Charged | str:
    imp_table = _qn(Impression._meta.db_table)
    with transaction.atomic(), connection.cursor() as cur:
        if customer_id is not None:
            cur.execute(_cap_upsert_sql(), [store_id, values["campaign"], customer_id, values["day"], cap, cap])
            if cur.fetchone() is None:
                transaction.set_rollback(True)
                return REFUSED_CAP
        cur.execute(f"{update} RETURNING spend_micros, day_spend_micros, {COST_SQL}", update_params)
        row = cur.fetchone()
        if row is None:
            transaction.set_rollback(True)
            return REFUSED_CAMPAIGN
        charged = Charged(int(row[0]), int(row[1]), int(row[2]))
        placeholders = ", ".join(["%s"] * (len(imp_values) + 2))
        cur.execute(
            f"INSERT INTO {imp_table} ({_impression_columns()}) VALUES ({placeholders})",  # noqa: S608
            [*imp_values, None, charged.cost_micros],
        )
        return charged


def charge_click(store_id: int, impression_id: uuid.UUID, *, now: datetime) -> tuple[bool, bool, int]:
    """Record the first click on an impression and, for a CPC campaign, charge it once.

    Returns ``(found, first_click, cost_micros)``. A repeated click finds ``clicked_at`` set and
    changes nothing; an unknown impression (or another store's) is not found and not charged. The
    charge is a conditional UPDATE like an impression's: it never takes the spend past the total or
    the daily budget (a click the budget can no longer pay for is recorded, free). One short
    transaction: the click mark, the charge, the impression's cost.
    """
    imp_table, camp_table = _qn(Impression._meta.db_table), _qn(Campaign._meta.db_table)
    imp_id = _prep(Impression, "impression_id", impression_id)
    day = _prep(Campaign, "spend_day", now.date())
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            f"UPDATE {imp_table} SET clicked_at = %s WHERE store_id = %s AND impression_id = %s "  # noqa: S608
            f"AND clicked_at IS NULL RETURNING id, campaign_id",
            [_prep(Impression, "clicked_at", now), store_id, imp_id],
        )
        row = cur.fetchone()
        if row is None:
            cur.execute(f"SELECT 1 FROM {imp_table} WHERE store_id = %s AND impression_id = %s", [store_id, imp_id])  # noqa: S608
            return cur.fetchone() is not None, False, 0
        pk, campaign_id = row
        cur.execute(
            f"UPDATE {camp_table} SET spend_micros = spend_micros + {CLICK_SQL}, "  # noqa: S608
            f"day_spend_micros = {TODAY_SQL} + {CLICK_SQL}, spend_day = %s "
            f"WHERE id = %s AND store_id = %s AND pricing_model = 'cpc' "
            f"AND spend_micros + {CLICK_SQL} <= ROUND(budget * 1000000) "
            f"AND (daily_budget IS NULL OR {TODAY_SQL} + {CLICK_SQL} <= ROUND(daily_budget * 1000000)) "
            f"RETURNING {CLICK_SQL}",
            [day, day, campaign_id, store_id, day],
        )
        charged = cur.fetchone()
        cost = int(charged[0]) if charged else 0
        if cost:
            cur.execute(
                f"UPDATE {imp_table} SET cost_micros = %s WHERE id = %s AND store_id = %s",  # noqa: S608
                [cost, pk, store_id],
            )
        return True, True, cost


def visitor_rows(store_id: int, customer_id: int, day: date) -> list[tuple]:
    """One round trip for an ad request's targeting: ``(0, segment_ids, auto_segment_id, None, None)``
    for the customer's profile (if any), then ``(1, None, None, campaign_id, count)`` for each of
    today's frequency counters."""
    profile_model = Customer._meta.get_field("profile").related_model
    profiles, caps = _qn(profile_model._meta.db_table), _qn(DailyCap._meta.db_table)
    sql = (
        f"SELECT 0, segment_ids, auto_segment_id, NULL, NULL FROM {profiles} "  # noqa: S608
        f"WHERE store_id = %s AND customer_id = %s "
        f"UNION ALL SELECT 1, NULL, NULL, campaign_id, count FROM {caps} "
        f"WHERE store_id = %s AND customer_id = %s AND day = %s"
    )
    with connection.cursor() as cur:
        cur.execute(sql, [store_id, customer_id, store_id, customer_id, _prep(DailyCap, "day", day)])
        return cur.fetchall()
