"""A real Celery worker process on the Redis broker, for tests that need the real path."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import pytest
from django.conf import settings
from django.db import connection

from tests.conftest import ROOT, publishing_to, require_postgres, require_redis
from tests.s3 import moto_s3, s3_bucket  # noqa: F401 - the local S3 server's fixtures


@pytest.fixture
def celery_worker(transactional_db):
    """Start ``celery worker`` against the test database and a private queue; stop it afterwards.

    The worker is a separate process, so the test must use committed data (transactional_db).
    """
    require_postgres()
    broker = require_redis()
    queue = f"test-{uuid.uuid4().hex[:8]}"
    db = settings.DATABASES["default"]
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        CELERY_BROKER_URL=broker,
        REDIS_URL=broker,
        CELERY_QUEUE=queue,
        CELERY_HEAVY_QUEUE=queue,
        CELERY_TASK_ALWAYS_EAGER="0",
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "shop_recs",
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
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        with publishing_to(queue, broker):
            yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        connection.close()


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.2, proc=None):
    """Poll until ``predicate()`` is truthy; on timeout, fail with the worker's output."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(interval)
    output = ""
    if proc is not None:
        proc.terminate()
        output = proc.communicate(timeout=20)[0][-4000:]
    pytest.fail(f"condition not met within {timeout}s; worker output:\n{output}")
