"""The real path: a training run sent through Redis is trained by a separate Celery worker process,
and the per-store lock holds under concurrent starts on PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shop_recs.activity.models import Event
from shop_recs.platform.jobs import JobStatus
from shop_recs.stores.scoping import unscoped
from shop_recs.training import artifacts, errors, services
from shop_recs.training.models import ModelVersion, TrainingRun
from tests.conftest import require_postgres
from tests.services.conftest import wait_for
from tests.threads import run_in_threads
from tests.training.conftest import T0

pytestmark = pytest.mark.services


def _seed(store, make_product, make_customer):
    products = [make_product(store, f"P{i}") for i in range(6)]
    customers = [make_customer(store, f"C{i}") for i in range(12)]
    events = []
    for c, cust in enumerate(customers):
        group = products[:3] if c % 2 == 0 else products[3:]
        r = (c // 2) % 3
        for step, prod in enumerate(group[r:] + group[:r]):
            events.append(
                Event(
                    store=store,
                    customer=cust,
                    product=prod,
                    event_type="purchase",
                    timestamp=T0 + timedelta(hours=c, minutes=step),
                )
            )
    with unscoped():
        Event.objects.bulk_create(events)


@pytest.fixture
def worker_var_dir(tmp_path, monkeypatch, settings):
    """Point the worker (started after this fixture, it inherits the environment) and this process
    at the same private artifact directory."""
    monkeypatch.setenv("SHOP_RECS_VAR_DIR", str(tmp_path))
    settings.MODEL_DIR = tmp_path / "models"
    artifacts.clear_model_cache()
    yield tmp_path
    artifacts.clear_model_cache()


def test_real_worker_trains_and_activates(worker_var_dir, celery_worker, make_store, make_product, make_customer):
    store = make_store("Worker Train", slug="worker-train")
    _seed(store, make_product, make_customer)
    run = services.start_training(store, ["popularity", "item_knn"])  # autocommit: enqueued at once

    def finished():
        with unscoped():
            return TrainingRun.objects.filter(pk=run.pk, status__in=["succeeded", "failed"]).first()

    done = wait_for(finished, timeout=90, proc=celery_worker)
    assert done.status == JobStatus.SUCCEEDED, done.error
    assert done.progress == 100 and done.metrics["algorithms"]
    with unscoped():
        active = ModelVersion.objects.get(store=store, is_active=True)
    assert artifacts.artifact_path(active).is_relative_to(worker_var_dir)
    loaded = artifacts.load_active_model(store)  # verifies the checksum the worker recorded
    assert loaded.version.pk == active.pk


@pytest.mark.django_db(transaction=True)
def test_lock_holds_under_concurrent_starts(make_store):
    require_postgres()
    store = make_store("Race", slug="race")

    def attempt(_i: int) -> str:
        try:
            services.start_training(store, ["popularity"], enqueue=False)
            return "started"
        except errors.TrainingAlreadyRunning:
            return "locked"

    outcomes = run_in_threads(attempt, 4)
    assert sorted(outcomes) == ["locked", "locked", "locked", "started"]
    with unscoped():
        assert TrainingRun.objects.filter(store=store).count() == 1
