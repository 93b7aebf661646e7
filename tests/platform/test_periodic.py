"""Periodic jobs: all of them are scheduled, every run is recorded, the sweeper covers every job kind."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from shop_recs.celery import app
from shop_recs.platform import periodic
from shop_recs.platform.jobs import JobStatus, job_models
from shop_recs.platform.models import PeriodicOutcome, PeriodicRun
from shop_recs.platform.tasks import sweep_stale_jobs_task
from shop_recs.stores.scoping import unscoped
from tests.conftest import ROOT

#: What the issue lists; each must be in the beat schedule (none was, apart from the idempotency purge).
EXPECTED_TASKS = {
    "analytics.experiments.tasks.attribute_all_stores_task",
    "shop_recs.ads.tasks.campaign_upkeep_task",
    "shop_recs.platform.tasks.sweep_stale_jobs_task",
    "analytics.tasks.refresh_due_profiles_task",
    "shop_recs.api.tasks.purge_idempotency_records",
}


def test_every_periodic_job_is_scheduled_registered_and_described(settings):
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert EXPECTED_TASKS <= scheduled
    app.loader.import_default_modules()
    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        assert entry["task"] in app.tasks, name
        assert entry["task"] in periodic.JOBS, name
        assert periodic.interval_seconds(entry) > 0


def _schedule_in_subprocess(**env: str) -> subprocess.CompletedProcess:
    code = (
        "import os; os.environ['DJANGO_SETTINGS_MODULE']='shop_recs.settings';"
        "from django.conf import settings as s;"
        "print({k: v['schedule'] for k, v in s.CELERY_BEAT_SCHEDULE.items()})"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True
    )


def test_intervals_come_from_the_environment():
    result = _schedule_in_subprocess(ATTRIBUTION_INTERVAL_SECONDS="42", PROFILE_REFRESH_CHECK_SECONDS="7")
    schedule = ast.literal_eval(result.stdout.strip())
    assert schedule["attribute-events"] == 42.0 and schedule["refresh-due-profiles"] == 7.0
    bad = _schedule_in_subprocess(STALE_JOB_SWEEP_INTERVAL_SECONDS="soon")
    assert bad.returncode != 0
    assert "STALE_JOB_SWEEP_INTERVAL_SECONDS='soon' is not an integer" in bad.stderr


def test_sweep_fails_dead_rows_of_every_job_kind_and_keeps_live_ones(store, other_store):
    models = job_models()
    names = {m.__name__ for m in models}
    assert {"TrainingRun", "ProfileRun", "EvaluationRun", "TuningJob"} <= names
    dead = timezone.now() - timedelta(days=2)
    alive = timezone.now()
    with unscoped():
        stale = [m.all_stores.create(store=store, status=JobStatus.RUNNING, heartbeat_at=dead) for m in models]
        live = [m.all_stores.create(store=other_store, status=JobStatus.RUNNING, heartbeat_at=alive) for m in models]
    result = sweep_stale_jobs_task.delay().get()
    assert result["failed"] == len(models)
    assert result["per_store"] == {store.pk: {"failed": len(models)}}
    with unscoped():
        for row in stale:
            row.refresh_from_db()
            assert (row.status, row.error) == (JobStatus.FAILED, type(row).stale_error)
        for row in live:
            row.refresh_from_db()
            assert row.status == JobStatus.RUNNING
    run = PeriodicRun.objects.get(name="sweep-stale-jobs")
    assert run.outcome == PeriodicOutcome.SUCCEEDED and run.finished_at is not None
    assert run.counts["failed"] == len(models)
    assert run.per_store == {str(store.pk): {"failed": len(models)}}
    assert run.summary.startswith(f"{len(models)} jobs of dead workers marked failed")


def test_a_failing_periodic_task_is_recorded_as_failed(db, settings):
    # Any task named in the schedule is recorded; this one fails on a malformed store id.
    settings.CELERY_BEAT_SCHEDULE = {
        **settings.CELERY_BEAT_SCHEDULE,
        "broken": {"task": "analytics.experiments.tasks.attribute_events_task", "schedule": 60.0},
    }
    from analytics.experiments.tasks import attribute_events_task

    with pytest.raises(ValueError):
        attribute_events_task.delay("not-a-store")
    run = PeriodicRun.objects.get(name="broken")
    assert run.outcome == PeriodicOutcome.FAILED
    assert "ValueError" in run.error and run.finished_at is not None


def test_tasks_outside_the_schedule_are_not_recorded(store):
    from shop_recs.ads.tasks import end_expired_campaigns_task

    assert end_expired_campaigns_task.delay(store_id=store.pk).get() == 0
    assert not PeriodicRun.objects.exists()


def test_old_run_records_are_pruned_but_each_jobs_latest_is_kept(db, settings):
    settings.PERIODIC_RUN_RETENTION_DAYS = 14
    old = timezone.now() - timedelta(days=30)
    kept_latest = PeriodicRun.objects.create(name="rare", task="t", started_at=old)
    PeriodicRun.objects.create(name="often", task="t", started_at=old)
    recent = PeriodicRun.objects.create(name="often", task="t", started_at=timezone.now())
    assert periodic.prune_periodic_runs() == 1
    assert set(PeriodicRun.objects.values_list("pk", flat=True)) == {kept_latest.pk, recent.pk}


def test_status_flags_jobs_that_missed_their_schedule_and_shows_only_the_stores_own_figures(
    store, other_store, settings
):
    settings.CELERY_BEAT_SCHEDULE = {
        "attribute-events": {"task": "analytics.experiments.tasks.attribute_all_stores_task", "schedule": 300.0},
        "sweep-stale-jobs": {"task": "shop_recs.platform.tasks.sweep_stale_jobs_task", "schedule": 300.0},
        "campaign-upkeep": {"task": "shop_recs.ads.tasks.campaign_upkeep_task", "schedule": 300.0},
    }
    now = timezone.now()
    PeriodicRun.objects.create(
        name="attribute-events",
        task="analytics.experiments.tasks.attribute_all_stores_task",
        started_at=now - timedelta(seconds=290),
        finished_at=now - timedelta(seconds=289),
        outcome=PeriodicOutcome.SUCCEEDED,
        counts={"events": 1240, "stores": 3},
        per_store={str(store.pk): {"events": 1200}, str(other_store.pk): {"events": 40}},
    )
    PeriodicRun.objects.create(
        name="sweep-stale-jobs",
        task="shop_recs.platform.tasks.sweep_stale_jobs_task",
        started_at=now - timedelta(seconds=601),  # just over two intervals
        outcome=PeriodicOutcome.SUCCEEDED,
    )
    rows = {row.name: row for row in periodic.periodic_status(store.pk, now=now)}
    assert not rows["attribute-events"].overdue
    assert rows["attribute-events"].store_summary == "1,200 events attributed to served lists"
    assert rows["sweep-stale-jobs"].overdue
    assert rows["campaign-upkeep"].overdue and rows["campaign-upkeep"].last is None
    other = {row.name: row for row in periodic.periodic_status(other_store.pk, now=now)}
    assert other["attribute-events"].store_summary == "40 events attributed to served lists"


def test_admin_shows_run_records_to_superusers_only(client, store, make_user, django_user_model):
    PeriodicRun.objects.create(name="attribute-events", task="t", summary="attributed 3 events in 2 stores")
    staff = make_user("staff-merchant", store, is_staff=True)
    client.force_login(staff)
    assert client.get("/admin/platform/periodicrun/").status_code == 403
    assert client.get("/admin/platform/storeperiodicsettings/").status_code == 200
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw-123456!")
    client.force_login(root)
    page = client.get("/admin/platform/periodicrun/")
    assert page.status_code == 200 and "attributed 3 events in 2 stores" in page.content.decode()
