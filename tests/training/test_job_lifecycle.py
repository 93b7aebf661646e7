"""The one job lifecycle of ``platform.jobs``: enqueue-or-fail, claim, succeed/fail, the stale sweep."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from analytics import services as analytics_services
from analytics import tasks as analytics_tasks
from analytics.evaluation import services as evaluation_services
from analytics.evaluation import tuning as evaluation_tuning
from analytics.evaluation.models import EvaluationRun, TuningJob
from analytics.models import ProfileRun
from shop_recs.platform import jobs
from shop_recs.platform.jobs import JobStatus
from shop_recs.training import services
from shop_recs.training.models import TrainingRun
from shop_recs.training.tasks import enqueue_due_trainings

pytestmark = pytest.mark.django_db


def _running(row, age: timedelta) -> None:
    type(row).all_stores.filter(pk=row.pk).update(status=JobStatus.RUNNING, heartbeat_at=timezone.now() - age)


def test_stale_sweep_fails_every_job_model_of_dead_workers(store):
    training = services.start_training(store, ["popularity"], enqueue=False)
    evaluation = evaluation_services.start_evaluation(store, ["popularity"], enqueue=False)
    tuning = evaluation_tuning.start_tuning(store, ["popularity"], enqueue=False)
    profiles = analytics_services.start_profile_run(store, enqueue=False)
    busy = analytics_services.start_profile_run(store, enqueue=False)
    for row in (training, evaluation, tuning, profiles):
        _running(row, timedelta(days=1))
    _running(busy, timedelta(seconds=5))  # a live worker's fresh heartbeat

    assert {TrainingRun, EvaluationRun, TuningJob, ProfileRun} <= set(jobs.job_models())
    assert jobs.fail_stale_jobs() == 4
    for row in (training, evaluation, tuning, profiles):
        row.refresh_from_db()
        assert row.status == JobStatus.FAILED and "stopped reporting progress" in row.error, row
        assert row.finished_at is not None
    assert "active model was not changed" in training.error
    busy.refresh_from_db()
    assert busy.status == JobStatus.RUNNING


def test_beat_tick_sweeps_other_jobs_too(store):
    evaluation = evaluation_services.start_evaluation(store, ["popularity"], enqueue=False)
    _running(evaluation, timedelta(days=1))
    enqueue_due_trainings.run()
    evaluation.refresh_from_db()
    assert evaluation.status == JobStatus.FAILED


def test_unreachable_broker_fails_a_profile_run(store, monkeypatch, django_capture_on_commit_callbacks):
    def broken(*args, **kwargs):
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(analytics_tasks.compute_profiles_task, "delay", broken)
    with django_capture_on_commit_callbacks(execute=True):
        run = analytics_services.start_profile_run(store)
    run.refresh_from_db()
    assert run.status == JobStatus.FAILED and "task queue" in run.error


def test_claim_succeed_and_fail_are_once_only(store):
    run = evaluation_services.start_evaluation(store, ["popularity"], enqueue=False)
    assert jobs.claim(run) and run.status == JobStatus.RUNNING and run.started_at is not None
    assert not jobs.claim(run)  # a redelivered task finds it claimed
    assert jobs.succeed(run, timings={"x": 1.0}, results={"ok": True})
    jobs.fail(run, "too late")
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED and run.progress == 100 and run.error == ""
    assert not jobs.succeed(run)


def test_json_safe():
    assert jobs.json_safe({1: [np.float32(0.5), float("nan"), np.arange(2)], "t": (np.int64(3),)}) == {
        "1": [0.5, None, [0, 1]],
        "t": [3],
    }
