"""Tuning jobs in eager mode: trials per grid point, the leaderboard, promotion and the store config."""

from __future__ import annotations

import math

import pytest

from analytics.evaluation import services, tuning
from analytics.evaluation.models import TuningJob, TuningTrial
from shop_recs.platform.jobs import JobStatus
from shop_recs.recsys import registry
from shop_recs.recsys.tuning import candidate_configs
from shop_recs.stores.scoping import store_scope
from shop_recs.training import config as training_config_module
from shop_recs.training.models import StoreTrainingConfig

pytestmark = pytest.mark.django_db


def _tune(store, capture, **kwargs) -> TuningJob:
    args = dict(algorithms=["popularity"], protocol="temporal", protocol_params={"test_days": 1})
    args.update(kwargs)
    with capture(execute=True):
        job = tuning.start_tuning(store, **args)
    with store_scope(store):
        return TuningJob.objects.get(pk=job.pk)


def test_trials_cover_the_grid_and_the_leaderboard_picks_the_known_best(
    store, popularity_puzzle, django_capture_on_commit_callbacks
):
    job = _tune(store, django_capture_on_commit_callbacks)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.dispatch == "chord" and job.progress == 100
    with store_scope(store):
        trials = list(TuningTrial.objects.filter(job=job).order_by("position"))
    expected = candidate_configs(registry.DEFAULT_GRIDS["popularity"], n_iter=20, seed=0)
    assert [t.params for t in trials] == expected
    assert all(t.status == JobStatus.SUCCEEDED for t in trials)
    scores = {t.params.get("count", "default"): t.score for t in trials}
    assert scores["weight"] == pytest.approx(1.0)
    assert scores["users"] == pytest.approx(1 / math.log2(3)) == scores["default"]
    assert job.best == "popularity"
    assert job.leaderboard["popularity"]["params"] == {"count": "weight"}
    assert job.leaderboard["popularity"]["score"] == pytest.approx(1.0)
    assert not tuning._split_path(job.pk).exists()  # the validation split file is cleaned up


def test_several_algorithms_and_failing_trials(store, popularity_puzzle, django_capture_on_commit_callbacks):
    job = _tune(
        store,
        django_capture_on_commit_callbacks,
        algorithms=["popularity", "item_knn"],
        grids={"popularity": {"count": ["bogus", "weight"]}, "item_knn": {"K": [5]}},
    )
    assert job.status == JobStatus.SUCCEEDED, job.error
    with store_scope(store):
        failed = TuningTrial.objects.get(job=job, params={"count": "bogus"})
    assert failed.status == JobStatus.FAILED and "bogus" in failed.error
    assert set(job.leaderboard) == {"popularity", "item_knn"}
    assert job.leaderboard["popularity"]["n_failed"] == 1
    assert job.best == "popularity"


def test_group_fallback_without_result_backend_finalises_on_the_last_trial(store, popularity_puzzle):
    job = tuning.start_tuning(store, ["popularity"], "temporal", {"test_days": 1}, enqueue=False)
    trial_ids = tuning.prepare_tuning(job.pk)
    assert len(trial_ids) == 3
    for i, tid in enumerate(trial_ids):
        tuning.run_trial(tid, finalise_when_last=True)
        job.refresh_from_db()
        assert job.status == (JobStatus.SUCCEEDED if i == len(trial_ids) - 1 else JobStatus.RUNNING)
    assert job.leaderboard["popularity"]["params"] == {"count": "weight"}
    assert tuning.finalise_tuning(job.pk).status == JobStatus.SUCCEEDED  # idempotent


def test_promote_writes_the_training_config_and_training_config_reads_it(
    store, popularity_puzzle, merchant, django_capture_on_commit_callbacks
):
    algorithms, params = training_config_module.training_config(store)
    assert algorithms == ["hybrid"]
    assert params == {"_gate": {"max_drop": 0.2, "min_lift": 0.0, "max_coverage_loss": 0.1}}
    training_config_module.update_settings(store, 0.05, min_lift=0.03)
    assert training_config_module.store_gate_config(store) == {
        "max_drop": 0.05,
        "min_lift": 0.03,
        "max_coverage_loss": 0.1,
    }
    job = _tune(store, django_capture_on_commit_callbacks)
    tuning.promote_tuning(job, merchant)
    with store_scope(store):
        config = StoreTrainingConfig.objects.get()
    assert config.algorithms == ["popularity"] and config.params["popularity"] == {"count": "weight"}
    assert config.source_job_id == job.pk and config.updated_by == merchant
    algorithms, params = training_config_module.training_config(store)
    assert algorithms == ["popularity"]
    assert params == {
        "popularity": {"count": "weight"},
        "_gate": {"max_drop": 0.05, "min_lift": 0.03, "max_coverage_loss": 0.1},
    }
    job.refresh_from_db()
    assert job.promoted_at is not None


def test_an_unfinished_job_cannot_be_promoted(store):
    job = tuning.start_tuning(store, ["popularity"], enqueue=False)
    with pytest.raises(services.EvaluationError):
        tuning.promote_tuning(job)


def test_start_tuning_validates(store):
    with pytest.raises(ValueError):
        tuning.start_tuning(store, ["popularity"], metric="ndcg@99", enqueue=False)
    with pytest.raises(ValueError):
        tuning.start_tuning(store, [], enqueue=False)
