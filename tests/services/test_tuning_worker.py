"""The real path of a tuning job: trials fan out as a Celery chord through Redis to a separate worker
process, and the chord's callback (which needs a result backend) finalises the leaderboard."""

from __future__ import annotations

import os

import pytest

from analytics.evaluation import tuning
from analytics.evaluation.models import TuningJob, TuningTrial
from shop_recs.platform.jobs import JobStatus
from shop_recs.stores.scoping import unscoped
from tests.evaluation.conftest import popularity_puzzle  # noqa: F401, F811 - the fixture, shared with the eager tests
from tests.services.conftest import wait_for

pytestmark = pytest.mark.services


@pytest.fixture
def worker_env(tmp_path, monkeypatch, settings):
    """Set before ``celery_worker`` starts (the worker inherits the environment): a private var dir
    and a Redis result backend, which chords need."""
    broker = os.environ.get("REDIS_URL", "")
    monkeypatch.setenv("SHOP_RECS_VAR_DIR", str(tmp_path))
    if broker:
        monkeypatch.setenv("CELERY_RESULT_BACKEND", broker)
    settings.TUNING_DIR = tmp_path / "tuning"
    return tmp_path


def test_real_worker_runs_the_chord_and_finalises(worker_env, celery_worker, store, popularity_puzzle):  # noqa: F811
    job = tuning.start_tuning(store, ["popularity"], "temporal", {"test_days": 1})  # autocommit: sent at once

    def finished():
        with unscoped():
            return TuningJob.objects.filter(pk=job.pk, status__in=[JobStatus.SUCCEEDED, JobStatus.FAILED]).first()

    done = wait_for(finished, timeout=90, proc=celery_worker)
    assert done.status == JobStatus.SUCCEEDED, done.error
    assert done.dispatch == "chord"  # the worker had a result backend, so the chord path ran
    assert done.leaderboard["popularity"]["params"] == {"count": "weight"}
    with unscoped():
        assert TuningTrial.objects.filter(job=done, status=JobStatus.SUCCEEDED).count() == 3
    assert not (worker_env / "tuning" / f"job{job.pk}.npz").exists()
