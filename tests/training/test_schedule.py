"""Scheduled retraining: due stores start a run, locked stores are skipped, no new events = no run."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError

from shop_recs.platform.jobs import JobStatus
from shop_recs.serving import fbt
from shop_recs.stores.scoping import unscoped
from shop_recs.training import schedule, services, tasks
from shop_recs.training.models import TrainingRun, TrainingSchedule
from tests.training.conftest import T0

pytestmark = pytest.mark.django_db

NOW = datetime(2025, 3, 1, 10, 30, tzinfo=UTC)


def _schedule(store, **kw) -> TrainingSchedule:
    kw.setdefault("algorithms", ["popularity"])
    kw.setdefault("next_due_at", NOW - timedelta(minutes=1))
    with unscoped():
        return TrainingSchedule.objects.create(store=store, **kw)


@pytest.fixture
def tick(django_capture_on_commit_callbacks):
    """One beat tick with the on-commit enqueue executed (eager Celery trains in-process)."""

    def _tick(now):
        with django_capture_on_commit_callbacks(execute=True):
            return schedule.enqueue_due_trainings(now=now)

    return _tick


def _runs(store) -> list[TrainingRun]:
    with unscoped():
        return list(TrainingRun.objects.filter(store=store).order_by("pk"))


def test_next_due_interval_and_daily_hour(store):
    every6 = TrainingSchedule(store=store, interval_hours=6)
    assert schedule.next_due(every6, NOW) == NOW + timedelta(hours=6)
    daily = TrainingSchedule(store=store, daily_hour=3)
    assert schedule.next_due(daily, NOW) == datetime(2025, 3, 2, 3, 0, tzinfo=UTC)
    late = TrainingSchedule(store=store, daily_hour=23)
    assert schedule.next_due(late, NOW) == datetime(2025, 3, 1, 23, 0, tzinfo=UTC)
    # a new daily schedule waits for its hour, a new interval schedule is due at once
    assert schedule.first_due(daily, NOW) == datetime(2025, 3, 2, 3, 0, tzinfo=UTC)
    assert schedule.first_due(every6, NOW) == NOW


def test_validation(store):
    with pytest.raises(ValidationError) as exc:
        TrainingSchedule(store=store, interval_hours=None, daily_hour=None, algorithms=["nope"]).clean()
    assert {"interval_hours", "algorithms"} <= set(exc.value.message_dict)
    with pytest.raises(ValidationError):
        TrainingSchedule(store=store, daily_hour=24, algorithms=[]).clean()
    TrainingSchedule(store=store, daily_hour=4, algorithms=["popularity"]).clean()


def test_due_store_is_trained_and_next_due_moves(store, shop_data, tick):
    sched = _schedule(store, interval_hours=12)
    result = tick(NOW)  # eager Celery: the run trains in-process
    assert result.outcomes == {store.pk: "started"}
    (run,) = _runs(store)
    assert run.status == JobStatus.SUCCEEDED, run.error
    assert run.data_stats["new_events"] == run.data_stats["events_read"] > 0
    assert run.data_stats["event_high_water"] > 0
    sched.refresh_from_db()
    assert sched.last_run_id == run.pk and sched.last_enqueued_at == NOW
    assert sched.next_due_at == NOW + timedelta(hours=12)
    assert "started run" in sched.last_outcome
    # not due again before next_due_at
    assert tick(NOW + timedelta(hours=1)).outcomes == {}


def test_no_new_events_means_no_run(store, shop_data, add_events, caplog, tick):
    sched = _schedule(store, interval_hours=1)
    tick(NOW)
    assert len(_runs(store)) == 1
    later = NOW + timedelta(hours=2)
    with caplog.at_level(logging.INFO, logger="shop_recs.training.schedule"):
        result = tick(later)
    assert result.outcomes == {store.pk: "no_new_events"}
    assert len(_runs(store)) == 1
    assert "no new events" in caplog.text
    sched.refresh_from_db()
    assert sched.next_due_at == later + timedelta(hours=1) and "no new events" in sched.last_outcome
    # two new events arrive: the next due tick retrains and the run says how many were new
    c, p = shop_data["customers"][0], shop_data["products"][4]
    add_events(store, [(c, p, "view", T0 + timedelta(days=1)), (c, p, "purchase", T0 + timedelta(days=1, hours=1))])
    result = tick(later + timedelta(hours=1))
    assert result.outcomes == {store.pk: "started"}
    runs = _runs(store)
    assert len(runs) == 2 and runs[1].status == JobStatus.SUCCEEDED
    assert runs[1].data_stats["new_events"] == 2


def test_store_already_training_is_skipped_and_stays_due(store, shop_data, caplog, tick):
    sched = _schedule(store, interval_hours=6)
    holder = services.start_training(store, ["popularity"], enqueue=False)  # queued: holds the lock
    with caplog.at_level(logging.INFO, logger="shop_recs.training.schedule"):
        result = tick(NOW)
    assert result.outcomes == {store.pk: "locked"}
    assert f"#{holder.pk}" in caplog.text and "skipped" in caplog.text
    sched.refresh_from_db()
    assert sched.next_due_at <= NOW and sched.last_run_id is None  # tried again on the next tick
    assert [r.pk for r in _runs(store)] == [holder.pk]


def test_disabled_and_other_stores(store, other_store, shop_data, tick):
    _schedule(store, interval_hours=6, enabled=False)
    _schedule(other_store, interval_hours=6)  # no events at all: nothing to train
    result = tick(NOW)
    assert result.outcomes == {other_store.pk: "no_new_events"}
    assert _runs(store) == [] and _runs(other_store) == []


def test_training_rebuilds_fbt(store, shop_data, monkeypatch):
    built = []
    real = fbt.build_fbt
    monkeypatch.setattr(fbt, "build_fbt", lambda s, **kw: built.append(s.pk) or real(s, **kw))
    run = services.train_store(store, algorithms=["popularity"])
    assert built == [store.pk]
    assert "frequently bought together" in run.timings
    assert fbt._tables.get(store.pk) is not None


def test_enqueue_failure_releases_the_lock(store, monkeypatch, django_capture_on_commit_callbacks):
    def broken(*a, **kw):
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.train_model, "delay", broken)
    with django_capture_on_commit_callbacks(execute=True):
        run = services.start_training(store, ["popularity"])
    run.refresh_from_db()
    assert run.status == JobStatus.FAILED and "task queue" in run.error
    services.start_training(store, ["popularity"], enqueue=False)  # the lock is free


def test_beat_task_and_schedule_setting(settings, store, shop_data, django_capture_on_commit_callbacks):
    assert settings.CELERY_BEAT_SCHEDULE["enqueue-due-trainings"]["task"] == tasks.enqueue_due_trainings.name
    _schedule(store, interval_hours=6, next_due_at=None)  # a new interval schedule is due at once
    with django_capture_on_commit_callbacks(execute=True):
        counts = tasks.enqueue_due_trainings.delay().get()
    assert counts == {"started": 1, "locked": 0, "no_new_events": 0}
    assert _runs(store)[0].status == JobStatus.SUCCEEDED
