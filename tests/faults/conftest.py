"""Fault-injection fixtures: real Celery worker processes that a test may start, kill and restart.

Unlike ``tests/services``' single ``celery_worker`` fixture, ``start_worker`` can be called several
times (a second worker after the first was killed) and takes extra environment variables (for
example ``SHOP_RECS_TEST_TRAINING_DELAY``). Worker output goes to a file, not a pipe, so a chatty
worker can never block on a full pipe; a failing ``wait_for`` prints it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from shop_recs.training import artifacts
from tests.conftest import ROOT, publishing_to, require_postgres, require_redis

# The serving fixtures (a small trained store, cleared in-process caches) are shared with tests/serving.
from tests.serving.conftest import _fresh_serving, add_events, shop  # noqa: F401


class Worker:
    """One ``celery worker --pool=solo`` process (the task runs in this very process, so SIGKILL hits it)."""

    def __init__(self, proc: subprocess.Popen, log: Path) -> None:
        self.proc = proc
        self.log = log

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self, tail: int = 6000) -> str:
        try:
            return self.log.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc.poll() is None


@pytest.fixture
def worker_var_dir(tmp_path, monkeypatch, settings):
    """This process and every worker (which inherits the environment) share one artifact directory."""
    monkeypatch.setenv("SHOP_RECS_VAR_DIR", str(tmp_path))
    settings.MODEL_DIR = tmp_path / "models"
    artifacts.clear_model_cache()
    yield tmp_path
    artifacts.clear_model_cache()


@pytest.fixture
def start_worker(transactional_db, tmp_path):
    """``start_worker(**env) -> Worker`` on a private queue of the real broker and the test database."""
    require_postgres()
    broker = require_redis()
    queue = f"faults-{uuid.uuid4().hex[:8]}"
    db = settings.DATABASES["default"]
    workers: list[Worker] = []

    def _start(**extra_env: str) -> Worker:
        env = dict(os.environ)
        env.update(
            DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            CELERY_BROKER_URL=broker,
            REDIS_URL=broker,
            CELERY_QUEUE=queue,
            CELERY_TASK_ALWAYS_EAGER="0",
            OPENBLAS_NUM_THREADS="1",
        )
        env.pop("SHOP_RECS_TEST_TRAINING_DELAY", None)
        env.update(extra_env)
        log = tmp_path / f"worker{len(workers) + 1}.log"
        proc = subprocess.Popen(
            [
                sys.executable,
                *("-m", "celery", "-A", "shop_recs", "worker", "--pool=solo", "--concurrency=1"),
                *("--loglevel=INFO", "-Q", queue, "--without-gossip", "--without-mingle", "--without-heartbeat"),
            ],
            cwd=ROOT,
            env=env,
            stdout=open(log, "w"),  # noqa: SIM115 - the child owns the handle
            stderr=subprocess.STDOUT,
        )
        worker = Worker(proc, log)
        workers.append(worker)
        return worker

    try:
        with publishing_to(queue, broker):
            yield _start
    finally:
        for worker in workers:
            if worker.alive():
                worker.proc.terminate()
        for worker in workers:
            try:
                worker.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.proc.kill()
                worker.proc.wait(timeout=10)
        connection.close()


def wait_until(predicate, timeout: float = 60.0, interval: float = 0.2, workers: tuple[Worker, ...] = ()):
    """Poll until ``predicate()`` is truthy; on timeout, fail with the workers' output."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    logs = "\n".join(f"--- worker {w.pid} ---\n{w.output()}" for w in workers)
    pytest.fail(f"condition not met within {timeout}s\n{logs}")
