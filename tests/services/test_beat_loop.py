"""The feedback loop closes by itself: real ``celery beat`` and ``celery worker`` processes.

Recommendations are served through the API while an experiment runs, the shop posts clicks and
purchases, and the experiment results and online metrics move with nobody calling attribution (the
beat entry ``attribute-events`` does). The same beat sweeps a job row whose worker died, refreshes
the store's profiles, and every run is recorded for the Jobs page. Intervals are a few seconds
(env settings), and every wait polls towards a generous deadline: nothing here asserts a timing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from analytics.evaluation.models import EvaluationRun
from analytics.experiments import selectors as experiment_selectors
from analytics.experiments import services as experiment_services
from analytics.models import CustomerProfile, ProfileRun
from shop_recs.activity.models import Event
from shop_recs.dashboard.models import OverviewSnapshot
from shop_recs.platform.jobs import JobRun, JobStatus
from shop_recs.platform.models import PeriodicOutcome, PeriodicRun
from shop_recs.stores.models import ApiKey
from shop_recs.stores.scoping import store_scope, unscoped
from shop_recs.training.models import ModelVersion, TrainingRun
from shop_recs.training.services import train_store
from tests.conftest import ROOT, publishing_to, require_postgres, require_redis
from tests.services.conftest import wait_for

DEADLINE = 240.0  # seconds; generous for a loaded 2-core CI machine, never an assertion on speed

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
#: The beat entries the fixture runs every few seconds (scheduled retraining is left at an hour).
SHORTENED = {
    "attribute-events",
    "sweep-stale-jobs",
    "campaign-upkeep",
    "refresh-due-profiles",
    "purge-idempotency-records",
    "purge-old-logs",
    "refresh-overviews",
}


class _Procs:
    """The beat and worker processes, with their log files, so a failed wait shows both."""

    def __init__(self, worker: subprocess.Popen, beat: subprocess.Popen, logs: list[Path]) -> None:
        self.worker, self.beat, self.logs = worker, beat, logs

    def poll(self):
        # wait_for stops early if this reports an exit: either process dying ends the loop.
        return self.worker.poll() if self.worker.poll() is not None else self.beat.poll()

    def terminate(self) -> None:
        for proc in (self.beat, self.worker):
            if proc.poll() is None:
                proc.terminate()

    def communicate(self, timeout: float | None = None) -> tuple[str, None]:
        self.stop(timeout or 20)
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self.logs), None

    def stop(self, timeout: float = 20) -> None:
        self.terminate()
        for proc in (self.beat, self.worker):
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    # Output goes to a file, not a pipe: a chatty beat would fill a pipe nobody reads and block.
    handle = log.open("w")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "shop_recs", *args],
            cwd=ROOT,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            text=True,
        )
    finally:
        handle.close()


@pytest.fixture
def beat_and_worker(transactional_db, tmp_path, settings):
    """Start a worker on a private queue and a beat that sends every periodic job there every few seconds."""
    require_postgres()
    broker = require_redis()
    queue = f"test-beat-{uuid.uuid4().hex[:8]}"
    db = settings.DATABASES["default"]
    settings.MODEL_DIR = tmp_path / "models"  # the same directory experiment_shop trains into
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        CELERY_BROKER_URL=broker,
        REDIS_URL=broker,
        CELERY_QUEUE=queue,
        CELERY_HEAVY_QUEUE=queue,
        CELERY_TASK_ALWAYS_EAGER="0",
        SHOP_RECS_MODEL_DIR=str(settings.MODEL_DIR),
        ATTRIBUTION_SETTLE_SECONDS="0",
        SERVING_LOG_BUFFER_ROWS="0",
        ATTRIBUTION_INTERVAL_SECONDS="2",
        STALE_JOB_SWEEP_INTERVAL_SECONDS="2",
        CAMPAIGN_UPKEEP_INTERVAL_SECONDS="3",
        PROFILE_REFRESH_CHECK_SECONDS="3",
        IDEMPOTENCY_PURGE_INTERVAL_SECONDS="5",
        LOG_PURGE_INTERVAL_SECONDS="5",
        OVERVIEW_REFRESH_SECONDS="3",
        # Scheduled retraining also sweeps; kept out of the way so the sweep seen is the sweeper's.
        TRAINING_SCHEDULE_TICK_SECONDS="3600",
        JOB_STALE_SECONDS="60",
    )
    worker_log, beat_log = tmp_path / "worker.log", tmp_path / "beat.log"
    worker = _spawn(
        [
            "worker",
            "--pool=solo",
            "--concurrency=1",
            "--loglevel=INFO",
            "-Q",
            queue,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        env,
        worker_log,
    )
    beat = _spawn(
        ["beat", "--loglevel=INFO", "--schedule", str(tmp_path / "beat-schedule"), "--max-interval", "1"],
        env,
        beat_log,
    )
    procs = _Procs(worker, beat, [worker_log, beat_log])
    try:
        with publishing_to(queue, broker):
            yield procs
    finally:
        procs.stop()
        connection.close()


@pytest.fixture
def experiment_shop(transactional_db, make_store, make_product, make_customer, settings, tmp_path):
    """A store with two trained versions, an experiment between them on "home", and an API key."""
    settings.MODEL_DIR = tmp_path / "models"
    store = make_store("Loop Shop", slug="loop")
    products = [make_product(store, f"P{i}", title=f"Product {i}", price=10 + i) for i in range(8)]
    customers = [make_customer(store, f"C{i}") for i in range(16)]
    rows = []
    for c, customer in enumerate(customers):
        for step in range(3):
            product = products[(c + step) % len(products)]
            rows.append(
                Event(
                    store=store,
                    customer=customer,
                    product=product,
                    event_type="purchase" if step == 0 else "view",
                    timestamp=T0 + timedelta(hours=c, minutes=step),
                    order_id=f"o{c}" if step == 0 else "",
                )
            )
    with unscoped():
        Event.objects.bulk_create(rows)
    train_store(store, algorithms=["item_knn"])
    train_store(store, algorithms=["popularity"])
    with store_scope(store):
        knn = ModelVersion.objects.filter(algorithm="item_knn").latest("pk")
        pop = ModelVersion.objects.filter(algorithm="popularity").latest("pk")
    exp = experiment_services.create_experiment(
        store,
        name="knn vs popularity",
        placement="home",
        variants=[
            {"name": "knn", "kind": "model_version", "model_version": knn, "traffic": 50},
            {"name": "pop", "kind": "model_version", "model_version": pop, "traffic": 50},
        ],
    )
    with store_scope(store):
        experiment_services.start_experiment(exp)
    _, raw = ApiKey.generate(store, "loop key")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return {"store": store, "experiment": exp, "client": client, "customers": customers}


def _figures(store, exp) -> tuple[int, int, int]:
    """(experiment clicks, experiment converters, online-metrics clicks) as the pages compute them."""
    with store_scope(store):
        results = experiment_selectors.experiment_results(exp)
        metrics = experiment_selectors.online_metrics()
    clicks = sum(row["clicks"] for row in results["variants"])
    converters = sum(row["converters"] for row in results["variants"])
    return clicks, converters, sum(row["clicks"] for row in metrics["totals"])


def _stale_row(model: type[JobRun], store, heartbeat: datetime) -> JobRun:
    with unscoped():
        return model.all_stores.create(
            store=store, status=JobStatus.RUNNING, started_at=heartbeat, heartbeat_at=heartbeat
        )


def test_beat_closes_the_feedback_loop_and_sweeps_dead_jobs(experiment_shop, beat_and_worker):
    store, exp, client = experiment_shop["store"], experiment_shop["experiment"], experiment_shop["client"]
    assert _figures(store, exp) == (0, 0, 0)

    # The shop: every customer gets the home page, clicks its first item, half of them buy it.
    now = timezone.now()
    events = []
    for i, customer in enumerate(experiment_shop["customers"]):
        body = client.get(f"/api/v1/recommendations/customer/{customer.external_id}?placement=home&n=4").json()
        assert body["experiment"] == exp.pk and body["items"], body
        sku, list_id = body["items"][0]["sku"], body["list_id"]
        context = {"list_id": list_id, "placement": "home"}
        stamp = (now + timedelta(seconds=1)).isoformat()
        events.append(
            {"customer": customer.external_id, "type": "click", "sku": sku, "timestamp": stamp, "context": context}
        )
        if i % 2 == 0:
            events.append(
                {
                    "customer": customer.external_id,
                    "type": "purchase",
                    "sku": sku,
                    "order_id": f"loop-{i}",
                    "value": 12.5,
                    "timestamp": stamp,
                    "context": context,
                }
            )
    response = client.post("/api/v1/events/batch", events, format="json")
    assert response.status_code == 201, response.content

    # Nobody calls attribution: beat's "attribute-events" does, and both pages' figures move.
    def loop_closed():
        figures = _figures(store, exp)
        return figures if figures == (16, 8, 16) else None

    assert wait_for(loop_closed, timeout=DEADLINE, proc=beat_and_worker) == (16, 8, 16)
    runs = list(PeriodicRun.objects.filter(name="attribute-events", counts__events__gt=0))
    # 16 clicks and 8 purchases, credited by the recorded periodic runs (in one run, or split over two).
    assert sum(run.per_store[str(store.pk)]["events"] for run in runs) == 24
    assert all(run.summary.startswith("attributed ") for run in runs)

    # A job whose worker died: created only now, so the worker's start-up sweep cannot be what fails it.
    created = timezone.now()
    dead_heartbeat = created - timedelta(hours=2)
    training = _stale_row(TrainingRun, store, dead_heartbeat)
    evaluation = _stale_row(EvaluationRun, store, dead_heartbeat)
    fresh = _stale_row(EvaluationRun, store, created + timedelta(hours=1))  # heartbeat in the future: alive

    def swept():
        with unscoped():
            statuses = dict(
                (model.__name__, model.all_stores.get(pk=pk).status)
                for model, pk in ((TrainingRun, training.pk), (EvaluationRun, evaluation.pk))
            )
        return statuses if set(statuses.values()) == {JobStatus.FAILED} else None

    wait_for(swept, timeout=DEADLINE, proc=beat_and_worker)
    with unscoped():
        assert TrainingRun.all_stores.get(pk=training.pk).error == TrainingRun.stale_error
        assert EvaluationRun.all_stores.get(pk=fresh.pk).status == JobStatus.RUNNING
    sweep = wait_for(
        lambda: PeriodicRun.objects.filter(
            name="sweep-stale-jobs", started_at__gt=created, counts__failed__gte=2
        ).first(),
        timeout=DEADLINE,
        proc=beat_and_worker,
    )
    assert sweep.per_store[str(store.pk)]["failed"] >= 2

    # Profiles and segments were due (never computed): beat started a run and the worker finished it.
    def profiled():
        with store_scope(store):
            done = ProfileRun.objects.filter(status=JobStatus.SUCCEEDED).exists()
            return done and CustomerProfile.objects.count() == 16

    wait_for(profiled, timeout=DEADLINE, proc=beat_and_worker)

    # The Overview's snapshots were recomputed by beat with the shop's clicks and purchases in them.
    with unscoped():
        n_events = Event.all_stores.filter(store=store).count()

    def overview_refreshed():
        with unscoped():
            snapshot = OverviewSnapshot.objects.filter(store=store, period_key="all").first()
        return snapshot if snapshot is not None and snapshot.payload["kpis"]["events"] == n_events else None

    wait_for(overview_refreshed, timeout=DEADLINE, proc=beat_and_worker)

    # Every periodic job of the schedule has run and is recorded (the Jobs page reads these rows).
    def every_job_recorded():
        names = set(PeriodicRun.objects.filter(outcome=PeriodicOutcome.SUCCEEDED).values_list("name", flat=True))
        return names >= SHORTENED

    wait_for(every_job_recorded, timeout=DEADLINE, proc=beat_and_worker)
