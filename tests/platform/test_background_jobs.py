"""Embedded mode's background jobs (``shop_recs.platform.executor`` through ``platform.jobs``).

The issue's reproduction: without a broker, "Start training" ran the whole run inside the request.
With the web process's pool started, the request returns while the job still works, the row shows
its progress, and the job then succeeds; a crash fails the row with its reason; rows a dead process
held are failed when the next process starts its pool. No timing is asserted: events order the
threads (a timeout only guards against a hang).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import pytest
from celery import shared_task
from django.core.handlers.wsgi import WSGIHandler
from django.db import transaction
from django.test.client import ClientHandler
from django.urls import reverse

from analytics.evaluation.models import EvaluationRun
from analytics.models import ProfileRun
from shop_recs.activity.models import Event
from shop_recs.platform import executor, jobs
from shop_recs.platform.jobs import JobStatus
from shop_recs.stores.scoping import store_scope, unscoped
from shop_recs.training.models import TrainingRun
from shop_recs.training.services import model_trained

GUARD = 60  # seconds: only a guard against a hung thread, never a measured duration

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


@shared_task
def crashing_task(run_id: int) -> None:
    """A task body that dies before recording anything on its row (a bug, a lost disk)."""
    raise RuntimeError(f"disk full while working on run {run_id}")


@pytest.fixture
def pool(settings, tmp_path):
    """The web process's pool, as a real server's first request starts it, and stopped afterwards."""
    settings.VAR_DIR = tmp_path / "var"
    settings.MODEL_DIR = tmp_path / "models"
    settings.JOB_EXECUTOR_THREADS = 2
    started = jobs.start_background_jobs()
    assert started is not None
    yield started
    executor.stop(wait=True)


@pytest.fixture
def trainable_store(store, make_product, make_customer):
    products = [make_product(store, f"P{i}") for i in range(6)]
    customers = [make_customer(store, f"C{i}") for i in range(12)]
    rows = [
        Event(store=store, customer=c, product=products[(i + step) % 6], event_type="view", timestamp=T0)
        for i, c in enumerate(customers)
        for step in range(3)
    ]
    for i, e in enumerate(rows):
        e.timestamp = T0 + timedelta(minutes=i)
    with unscoped():
        Event.objects.bulk_create(rows)
    return store


@pytest.mark.django_db(transaction=True)
def test_start_training_returns_before_the_job_finishes_then_shows_progress_and_success(
    client, trainable_store, merchant, pool
):
    store = trainable_store
    response_returned, job_waiting, release = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, object] = {}

    def hold_the_job(sender, **kwargs):
        # Sent by the run just before it is marked succeeded, from whichever thread runs it.
        seen["background"] = threading.current_thread() is not threading.main_thread()
        if seen["background"]:
            seen["response_first"] = response_returned.wait(GUARD)
            job_waiting.set()
            release.wait(GUARD)

    model_trained.connect(hold_the_job, dispatch_uid="test-hold-the-job")
    try:
        client.force_login(merchant)
        resp = client.post(reverse("recommend:start", kwargs={"store_slug": "alpha"}), {"algorithms": ["popularity"]})
        response_returned.set()
        assert resp.status_code == 302
        assert seen.get("background", True), "the job ran inside the request"
        assert job_waiting.wait(GUARD), "the job never reached its last stage"
        assert seen == {"background": True, "response_first": True}

        run = TrainingRun.all_stores.get(store=store)
        assert run.status == JobStatus.RUNNING and 0 < run.progress < 100 and run.stage
        status_url = reverse("recommend:run_status", kwargs={"store_slug": "alpha", "run_id": run.pk})
        polled = client.get(status_url).json()
        assert polled["status"] == JobStatus.RUNNING and polled["finished"] is False
        assert polled["progress"] == run.progress
        ledger = json.loads((executor_dir(pool) / f"{os.getpid()}.json").read_text())
        assert ledger == [f"training.trainingrun:{run.pk}"]
    finally:
        release.set()
        model_trained.disconnect(dispatch_uid="test-hold-the-job")
    assert pool.wait(GUARD)
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED and run.progress == 100, run.error
    assert client.get(status_url).json()["finished"] is True
    assert json.loads((executor_dir(pool) / f"{os.getpid()}.json").read_text()) == []


@pytest.mark.django_db(transaction=True)
def test_update_profiles_and_start_evaluation_return_while_their_jobs_wait(
    client, trainable_store, merchant, settings, tmp_path
):
    """The other two buttons of the issue: with the pool's one thread held, both requests return
    with their rows still queued (they were not run inside the request); released, both finish."""
    settings.VAR_DIR = tmp_path / "var"
    settings.JOB_EXECUTOR_THREADS = 1
    pool = jobs.start_background_jobs()
    held, release = threading.Event(), threading.Event()
    try:
        pool.submit("test:hold", lambda: (held.set(), release.wait(GUARD)))
        assert held.wait(GUARD)
        client.force_login(merchant)
        slug = {"store_slug": "alpha"}
        profiles = client.post(reverse("analytics:start_run", kwargs=slug), {"mode": "full"})
        evaluation = client.post(
            reverse("evaluation:start_run", kwargs=slug),
            {"eval-algorithms": ["popularity"], "eval-protocol": "leave_last", "eval-ks": "5, 10"},
        )
        assert profiles.status_code == 302 and evaluation.status_code == 302
        profile_run = ProfileRun.all_stores.get(store=trainable_store)
        evaluation_run = EvaluationRun.all_stores.get(store=trainable_store)
        assert profile_run.status == evaluation_run.status == JobStatus.QUEUED
        tasks_page = client.get(reverse("dashboard:tasks", kwargs=slug)).content.decode()
        live = {p.split('"')[0] for p in tasks_page.split('data-task="')[1:] if 'data-live="1"' in p.split(">")[0]}
        assert live == {f"analytics.profilerun:{profile_run.pk}", f"evaluation.evaluationrun:{evaluation_run.pk}"}
    finally:
        release.set()
        finished = pool.wait(GUARD)
        executor.stop(wait=True)  # no job may outlive the test (its database is flushed next)
    assert finished
    profile_run.refresh_from_db()
    evaluation_run.refresh_from_db()
    assert profile_run.status == JobStatus.SUCCEEDED, profile_run.error
    assert evaluation_run.status == JobStatus.SUCCEEDED, evaluation_run.error
    assert profile_run.progress == evaluation_run.progress == 100


def executor_dir(pool: executor.BackgroundExecutor):
    return pool._ledger.path.parent


@pytest.mark.django_db(transaction=True)
def test_a_crash_in_the_background_fails_the_job_with_the_reason(store, pool):
    with store_scope(store), transaction.atomic():
        run = TrainingRun.objects.create(store=store, algorithms=["popularity"])
        jobs.enqueue_on_commit(crashing_task, run)
    assert pool.wait(GUARD)
    run.refresh_from_db()
    assert run.status == JobStatus.FAILED and run.finished_at is not None
    assert run.error.startswith(f"RuntimeError: disk full while working on run {run.pk}")


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    return int(proc.stdout)


@pytest.mark.django_db(transaction=True)
def test_restart_fails_the_rows_a_dead_process_held_and_leaves_live_ones(settings, tmp_path, store, other_store):
    settings.VAR_DIR = tmp_path / "var"
    ledgers = tmp_path / "var" / "jobs"
    ledgers.mkdir(parents=True)
    now = datetime.now(UTC)
    with unscoped():
        running = TrainingRun.objects.create(
            store=store, algorithms=["popularity"], status=JobStatus.RUNNING, started_at=now, heartbeat_at=now
        )
        queued = ProfileRun.objects.create(store=store)
        done = ProfileRun.objects.create(store=other_store, status=JobStatus.SUCCEEDED, progress=100)
        elsewhere = TrainingRun.objects.create(
            store=other_store, algorithms=["popularity"], status=JobStatus.RUNNING, started_at=now, heartbeat_at=now
        )
    dead = _dead_pid()
    (ledgers / f"{dead}.json").write_text(
        json.dumps(
            [
                f"training.trainingrun:{running.pk}",
                f"analytics.profilerun:{queued.pk}",
                f"analytics.profilerun:{done.pk}",
            ]
        )
    )
    # A live process (our parent) still holds its row: it must be left alone.
    (ledgers / f"{os.getppid()}.json").write_text(json.dumps([f"training.trainingrun:{elsewhere.pk}"]))
    try:
        assert jobs.start_background_jobs() is not None
    finally:
        executor.stop(wait=True)

    for row in (running, queued, done, elsewhere):
        row.refresh_from_db()
    assert running.status == queued.status == JobStatus.FAILED
    assert running.error == queued.error == jobs.ORPHAN_ERROR
    assert done.status == JobStatus.SUCCEEDED and done.error == ""
    assert elsewhere.status == JobStatus.RUNNING
    assert not (ledgers / f"{dead}.json").exists() and (ledgers / f"{os.getppid()}.json").exists()


@pytest.mark.django_db
def test_only_a_real_server_starts_the_pool_and_commands_run_jobs_inline(settings, tmp_path, monkeypatch):
    settings.VAR_DIR = tmp_path / "var"
    monkeypatch.setattr(jobs, "_pool_decided", False)  # as in a fresh process
    # A live-server test earlier in this process (its handler is a WSGIHandler) started the pool:
    # a fresh process has none, and this test is about what starts one.
    executor.stop(wait=True)
    assert executor.current() is None
    jobs._on_request_started(sender=ClientHandler)
    assert executor.current() is None  # the test client (like commands and shells) keeps eager runs
    try:
        jobs._on_request_started(sender=WSGIHandler)
        assert executor.current() is not None
        jobs._on_request_finished(sender=WSGIHandler)
        executor.stop(wait=True)
        jobs._on_request_started(sender=WSGIHandler)
        assert executor.current() is None  # decided once per process, not on every request
    finally:
        executor.stop(wait=True)


@pytest.mark.django_db
def test_no_pool_with_a_broker_or_with_zero_threads(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    settings.JOB_EXECUTOR_THREADS = 0
    assert jobs.start_background_jobs() is None
    settings.JOB_EXECUTOR_THREADS = 2
    settings.CELERY_TASK_ALWAYS_EAGER = False  # a broker: real workers run the jobs
    assert jobs.start_background_jobs() is None
    assert executor.current() is None
