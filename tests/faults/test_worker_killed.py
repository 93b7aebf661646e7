"""A worker SIGKILLed in the middle of a training run: the active model is untouched, the run does not
keep the store locked, and the next run (on a fresh worker) trains and activates normally."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from shop_recs.platform.jobs import JobStatus
from shop_recs.stores.scoping import unscoped
from shop_recs.training import artifacts, services
from shop_recs.training.models import ModelVersion, TrainingRun
from tests.faults.conftest import wait_until

pytestmark = pytest.mark.services


def _run(pk: int) -> TrainingRun:
    with unscoped():
        return TrainingRun.objects.get(pk=pk)


def _active(store) -> ModelVersion:
    with unscoped():
        return ModelVersion.objects.get(store=store, is_active=True)


def test_worker_killed_mid_training(worker_var_dir, start_worker, shop, store, settings):
    before = _active(store)  # trained in-process by the ``shop`` fixture
    before_file = artifacts.artifact_path(before).read_bytes()

    # The data stage sleeps for a minute in this worker, so it is surely mid-run when killed.
    doomed = start_worker(SHOP_RECS_TEST_TRAINING_DELAY="60")
    run = services.start_training(store, ["popularity", "item_knn"], {"_gate": {"force": True}})
    wait_until(lambda: _run(run.pk).status == JobStatus.RUNNING, timeout=45, workers=(doomed,))
    running = _run(run.pk)
    assert running.stage == "loading data" and running.attempts == 1

    doomed.proc.kill()  # SIGKILL: no clean shutdown, no ack, no failure handler
    doomed.proc.wait(timeout=10)
    killed_at = timezone.now()

    # Nothing of the dead run reached serving.
    assert _active(store).pk == before.pk
    assert artifacts.artifact_path(before).read_bytes() == before_file
    with unscoped():
        assert not ModelVersion.objects.filter(run_id=run.pk).exists()
    artifacts.clear_model_cache()
    assert artifacts.load_active_model(store).version.pk == before.pk
    orphan = _run(run.pk)
    assert orphan.status == JobStatus.RUNNING  # orphaned: nobody will ever finish it

    # Its heartbeat goes stale; the threshold is 5 minutes in production, 2 s here.
    settings.TRAINING_STALE_SECONDS = 2
    time.sleep(max(0.0, 2.5 - (timezone.now() - orphan.heartbeat_at).total_seconds()))

    # A fresh worker; the next start (scheduled or by a merchant) fails the orphan and takes the lock.
    fresh = start_worker()
    retry = services.start_training(store, ["popularity", "item_knn"], {"_gate": {"force": True}})
    dead = _run(run.pk)
    assert dead.status == JobStatus.FAILED and "stopped reporting progress" in dead.error
    assert dead.finished_at >= killed_at

    done = wait_until(lambda: (r := _run(retry.pk)).is_finished and r, timeout=60, workers=(fresh, doomed))
    assert done.status == JobStatus.SUCCEEDED, done.error
    assert done.data_stats["new_events"] == 0  # no events arrived since the fixture's run
    active = _active(store)
    assert active.run_id == retry.pk and active.pk != before.pk
    artifacts.clear_model_cache()
    assert artifacts.load_active_model(store).version.pk == active.pk
    # The dead run's message is still unacknowledged in Redis (redelivered after the broker's
    # visibility timeout); a late redelivery of a finished run is ignored by run_training.
    assert services.run_training(run.pk).status == JobStatus.FAILED


def test_beat_tick_fails_orphaned_runs(worker_var_dir, start_worker, shop, store, settings):
    """The beat task's housekeeping releases a dead worker's lock even if nobody starts a new run."""
    from shop_recs.training.tasks import enqueue_due_trainings

    doomed = start_worker(SHOP_RECS_TEST_TRAINING_DELAY="60")
    run = services.start_training(store, ["popularity"])
    wait_until(lambda: _run(run.pk).status == JobStatus.RUNNING, timeout=45, workers=(doomed,))
    doomed.proc.kill()
    doomed.proc.wait(timeout=10)
    settings.TRAINING_STALE_SECONDS = 1
    time.sleep(1.5)
    enqueue_due_trainings.run()  # the task body, in this process (what beat triggers every tick)
    assert _run(run.pk).status == JobStatus.FAILED
