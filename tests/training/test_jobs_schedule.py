"""The Jobs page's "Scheduled retraining" form: who may change it, validation, next_due_at, isolation, zh-Hans."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from django.urls import reverse

from shop_recs.stores.models import Role
from shop_recs.stores.scoping import store_scope, unscoped
from shop_recs.training import schedule
from shop_recs.training.forms import MAX_INTERVAL_HOURS
from shop_recs.training.models import TrainingSchedule

pytestmark = pytest.mark.django_db

# 10:30 UTC: a daily hour of 3 falls on the next day, a daily hour of 23 on the same day.
NOW = datetime(2025, 3, 1, 10, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _frozen_now(monkeypatch):
    """``update_schedule`` reads the clock through its module's ``timezone``; pin it to NOW there only."""
    monkeypatch.setattr(schedule, "timezone", SimpleNamespace(now=lambda: NOW))


def _url(name: str, slug: str = "alpha") -> str:
    return reverse(f"recommend:{name}", kwargs={"store_slug": slug})


def _post(client, slug: str = "alpha", **fields):
    """POST the schedule form; ``fields`` use the form's names, the ``schedule-`` prefix is added here."""
    data = {}
    for name, value in fields.items():
        if value is None or value is False:
            continue  # an unticked checkbox or an empty input is simply absent or blank
        data[f"schedule-{name}"] = "on" if value is True else value
    return client.post(_url("schedule", slug), data)


def _row(store) -> TrainingSchedule | None:
    with store_scope(store):
        return TrainingSchedule.objects.first()


def _field_errors(resp, field: str) -> list[str]:
    return list(resp.context["schedule_form"].errors.get(field, []))


def test_merchant_creates_a_daily_schedule(client, store, merchant):
    client.force_login(merchant)
    resp = _post(client, enabled=True, daily_hour="3", algorithms=["popularity", "item_knn"])
    assert resp.status_code == 302 and resp["Location"] == _url("jobs")
    row = _row(store)
    assert row.enabled and row.daily_hour == 3 and row.interval_hours is None
    assert row.algorithms == ["popularity", "item_knn"]
    assert row.next_due_at == datetime(2025, 3, 2, 3, 0, tzinfo=UTC)  # a daily schedule waits for its hour
    page = client.get(_url("jobs")).content.decode()
    assert "Schedule saved. The next scheduled run is due 2025-03-02 03:00 UTC." in page
    assert "Daily at 03:00 UTC" in page and "popularity, item_knn" in page


def test_merchant_switches_to_an_interval_then_disables(client, store, merchant):
    client.force_login(merchant)
    _post(client, enabled=True, daily_hour="23")
    assert _row(store).next_due_at == datetime(2025, 3, 1, 23, 0, tzinfo=UTC)

    assert _post(client, enabled=True, interval_hours="6").status_code == 302
    row = _row(store)
    assert row.daily_hour is None and row.interval_hours == 6 and row.algorithms == []
    assert row.next_due_at == NOW  # a changed interval cadence is due at once
    assert "Every 6 hours" in client.get(_url("jobs")).content.decode()

    assert _post(client, enabled=False, interval_hours="6").status_code == 302
    row = _row(store)
    assert not row.enabled and row.interval_hours == 6
    assert "Scheduled retraining is off." in client.get(_url("jobs")).content.decode()
    with unscoped():  # the beat task ignores it now
        assert not TrainingSchedule.objects.filter(enabled=True).exists()


def test_changing_only_the_algorithms_keeps_the_next_slot(client, store, merchant, monkeypatch):
    client.force_login(merchant)
    _post(client, enabled=True, interval_hours="12")
    monkeypatch.setattr(schedule, "timezone", SimpleNamespace(now=lambda: NOW + timedelta(hours=5)))
    _post(client, enabled=True, interval_hours="12", algorithms=["ease"])
    row = _row(store)
    assert row.algorithms == ["ease"] and row.next_due_at == NOW  # saving did not postpone the run


def test_switching_back_on_counts_from_now(client, store, merchant, monkeypatch):
    client.force_login(merchant)
    _post(client, enabled=True, daily_hour="3")
    _post(client, enabled=False, daily_hour="3")
    later = NOW + timedelta(days=10)
    monkeypatch.setattr(schedule, "timezone", SimpleNamespace(now=lambda: later))
    _post(client, enabled=True, daily_hour="3")
    # not the stale slot from ten days ago, which the beat task would run at once
    assert _row(store).next_due_at == datetime(2025, 3, 12, 3, 0, tzinfo=UTC)


def test_admin_row_with_both_cadences_shows_only_the_daily_hour(client, store, merchant):
    with unscoped():  # as the admin saves it: the model's default interval next to a daily hour
        TrainingSchedule.objects.create(store=store, daily_hour=5, interval_hours=24)
    client.force_login(merchant)
    form = client.get(_url("jobs")).context["schedule_form"]
    assert form["daily_hour"].value() == 5 and form["interval_hours"].value() is None


def test_analyst_sees_the_schedule_but_cannot_change_it(client, store, analyst):
    schedule.update_schedule(store, enabled=True, daily_hour=4, interval_hours=None, algorithms=["als"], now=NOW)
    before = _row(store)
    client.force_login(analyst)
    page = client.get(_url("jobs")).content.decode()
    assert "Scheduled retraining" in page and "Daily at 04:00 UTC" in page and "2025-03-02 04:00 UTC" in page
    assert 'id="schedule-form"' not in page and "only merchants can change the schedule" in page
    assert _post(client, enabled=False, interval_hours="1").status_code == 403
    after = _row(store)
    assert (after.enabled, after.daily_hour, after.interval_hours, after.algorithms, after.next_due_at) == (
        before.enabled,
        before.daily_hour,
        before.interval_hours,
        before.algorithms,
        before.next_due_at,
    )


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"enabled": True, "daily_hour": "24"}, "daily_hour", "Use an hour from 0 to 23."),
        ({"enabled": True, "daily_hour": "-1"}, "daily_hour", "Use an hour from 0 to 23."),
        (
            {"enabled": True, "interval_hours": "0"},
            "interval_hours",
            f"Use an interval from 1 to {MAX_INTERVAL_HOURS} hours.",
        ),
        (
            {"enabled": True, "interval_hours": str(MAX_INTERVAL_HOURS + 1)},
            "interval_hours",
            f"Use an interval from 1 to {MAX_INTERVAL_HOURS} hours.",
        ),
        ({"enabled": True, "interval_hours": "six"}, "interval_hours", "Enter a whole number."),
        (
            {"enabled": True, "daily_hour": "3", "interval_hours": "6"},
            "interval_hours",
            "Set either a daily hour or an interval, not both.",
        ),
        ({"enabled": True}, "daily_hour", "Set a daily hour or an interval to retrain automatically."),
        ({"enabled": True, "interval_hours": "6", "algorithms": ["nope"]}, "algorithms", "Select a valid choice."),
    ],
)
def test_invalid_input_is_400_with_the_field_error(client, store, merchant, fields, field, message):
    client.force_login(merchant)
    resp = _post(client, **fields)
    assert resp.status_code == 400
    errors = _field_errors(resp, field)
    assert any(e.startswith(message) for e in errors), errors
    assert f'data-field-error="{field}"' in resp.content.decode()
    assert _row(store) is None


def test_a_disabled_schedule_needs_no_cadence(client, store, merchant):
    client.force_login(merchant)
    _post(client, enabled=True, daily_hour="2")
    assert _post(client, enabled=False).status_code == 302
    row = _row(store)
    assert not row.enabled and row.daily_hour == 2  # the cadence is kept for switching it back on


def test_other_store_schedule_is_untouched(client, store, other_store, merchant, make_user):
    schedule.update_schedule(other_store, enabled=True, daily_hour=1, interval_hours=None, algorithms=["bpr"], now=NOW)
    theirs = _row(other_store)
    client.force_login(merchant)
    page = client.get(_url("jobs")).content.decode()
    assert "Not set up" in page and "Daily at 01:00 UTC" not in page  # not beta's schedule
    _post(client, enabled=True, interval_hours="8")
    # a merchant of alpha cannot post to beta's form at all
    assert _post(client, slug="beta", enabled=False, interval_hours="8").status_code == 404
    with unscoped():
        assert TrainingSchedule.objects.count() == 2
    mine, after = _row(store), _row(other_store)
    assert mine.interval_hours == 8 and mine.store_id == store.pk
    assert (after.enabled, after.daily_hour, after.algorithms, after.next_due_at) == (
        True,
        1,
        ["bpr"],
        theirs.next_due_at,
    )
    # and beta's own merchant sees only beta's schedule
    client.force_login(make_user("beta-merchant", other_store, Role.MERCHANT))
    beta_page = client.get(_url("jobs", "beta")).content.decode()
    assert "Daily at 01:00 UTC" in beta_page and "Every 8 hours" not in beta_page


def test_page_in_simplified_chinese(client, store, merchant):
    schedule.update_schedule(store, enabled=True, daily_hour=3, interval_hours=None, now=NOW)
    client.force_login(merchant)
    client.post("/i18n/setlang/", {"language": "zh-hans", "next": _url("jobs")})
    html = client.get(_url("jobs")).content.decode()
    assert 'lang="zh-hans"' in html
    for text in ("定时重新训练", "每日 03:00（UTC）", "保存计划", "下次执行时间", "自动重新训练"):
        assert text in html, text
    assert "Scheduled retraining" not in html and "Save schedule" not in html
    resp = _post(client, enabled=True, daily_hour="30")
    assert resp.status_code == 400 and "请使用 0 到 23 之间的小时数。" in resp.content.decode()
