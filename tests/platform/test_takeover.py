"""A redelivered task whose previous worker is gone takes the run over at once (issue 12, §7).

A killed Celery pool child leaves its training run "running" with a fresh heartbeat; the broker
redelivers the task to a new child. The run records the claiming worker (host and pid), so the
redelivery can see that the pid is gone and take the run over instead of leaving the store locked
until the heartbeat goes stale. A worker that is still alive keeps its run.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from shop_recs.activity.models import Event
from shop_recs.platform import jobs
from shop_recs.platform.jobs import JobStatus
from shop_recs.stores.scoping import unscoped
from shop_recs.training import services
from shop_recs.training.models import TrainingRun

pytestmark = pytest.mark.django_db

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped) by the time this returns."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    return int(proc.stdout)


@pytest.fixture
def trainable_store(store, make_product, make_customer):
    products = [make_product(store, f"P{i}") for i in range(6)]
    customers = [make_customer(store, f"C{i}") for i in range(12)]
    rows = [
        Event(
            store=store,
            customer=c,
            product=products[(i + step) % 6],
            event_type="view",
            timestamp=T0 + timedelta(minutes=3 * i + step),
        )
        for i, c in enumerate(customers)
        for step in range(3)
    ]
    with unscoped():
        Event.objects.bulk_create(rows)
    return store


def _orphaned_run(store, worker: str) -> TrainingRun:
    """A run as a killed pool child leaves it: running, first attempt, a fresh heartbeat, its worker recorded."""
    now = timezone.now()
    return TrainingRun.all_stores.create(
        store=store,
        algorithms=["popularity"],
        params={"_gate": {"force": True}, jobs.WORKER_KEY: worker},
        status=JobStatus.RUNNING,
        stage="loading data",
        started_at=now,
        heartbeat_at=now,
        attempts=1,
    )


def test_redelivery_takes_over_at_once_when_the_recorded_worker_pid_is_dead(trainable_store):
    run = _orphaned_run(trainable_store, f"{socket.gethostname()}:{_dead_pid()}")
    assert timezone.now() - run.heartbeat_at < TrainingRun.stale_after()  # the old code's "fresh heartbeat"

    done = services.run_training(run.pk)  # the redelivered task's body

    assert done.status == JobStatus.SUCCEEDED, done.error
    assert done.attempts == 2
    assert done.params[jobs.WORKER_KEY] == jobs.worker_identity()  # the new owner is on the row
    assert done.started_at > run.started_at


def test_redelivery_is_refused_while_the_recorded_worker_lives_and_takes_over_once_it_died(trainable_store):
    alive = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        run = _orphaned_run(trainable_store, f"{socket.gethostname()}:{alive.pid}")
        refused = services.run_training(run.pk)
        assert refused.status == JobStatus.RUNNING and refused.attempts == 1
        assert refused.started_at == run.started_at
    finally:
        alive.stdin.close()
        alive.wait(timeout=30)
    # The same row, its worker now gone (and reaped): the next delivery takes it over at once.
    done = services.run_training(run.pk)
    assert done.status == JobStatus.SUCCEEDED, done.error
    assert done.attempts == 2


def test_a_worker_on_another_host_falls_back_to_the_heartbeat_age(trainable_store):
    run = _orphaned_run(trainable_store, f"not-{socket.gethostname()}:{_dead_pid()}")
    assert services.run_training(run.pk).status == JobStatus.RUNNING  # fresh heartbeat: left alone
    assert jobs.worker_gone(run.params[jobs.WORKER_KEY]) is False
    TrainingRun.all_stores.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(days=1))
    done = services.run_training(run.pk)  # stale heartbeat: taken over as before
    assert done.status == JobStatus.SUCCEEDED and done.params[jobs.WORKER_KEY] == jobs.worker_identity()


def test_two_deliveries_that_both_saw_the_dead_worker_cannot_both_claim_the_run(store):
    run = _orphaned_run(store, f"{socket.gethostname()}:{_dead_pid()}")
    first, second = TrainingRun.all_stores.get(pk=run.pk), TrainingRun.all_stores.get(pk=run.pk)
    statuses = (JobStatus.QUEUED, JobStatus.RUNNING)

    assert jobs.claim(first, statuses=statuses, params={jobs.WORKER_KEY: "host-a:1"}) is True
    assert jobs.claim(second, statuses=statuses, params={jobs.WORKER_KEY: "host-b:2"}) is False
    second.refresh_from_db()
    assert second.params[jobs.WORKER_KEY] == "host-a:1"


def test_worker_gone_only_for_a_dead_pid_on_this_host():
    host = socket.gethostname()
    assert jobs.worker_gone(f"{host}:{_dead_pid()}") is True
    assert jobs.worker_gone(jobs.worker_identity()) is False
    for unknown in ("", "nonsense", f"{host}:", f"{host}:-3", f"{host}:0", f"{host}:²", f"elsewhere:{_dead_pid()}"):
        assert jobs.worker_gone(unknown) is False, unknown
