"""The training lifecycle: the lock, a full eager run, the gate, failures, corrupt artifacts, rollback."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.core.management import call_command
from django.utils import timezone

from shop_recs.platform.jobs import JobStatus
from shop_recs.recsys import registry
from shop_recs.stores.scoping import store_scope
from shop_recs.training import activation, artifacts, errors, services
from shop_recs.training.errors import ArtifactCorrupt, VersionNotUsable
from shop_recs.training.models import ModelVersion, TrainingRun


def _versions(store):
    with store_scope(store):
        return list(ModelVersion.objects.order_by("pk"))


def _active(store):
    with store_scope(store):
        return ModelVersion.objects.filter(is_active=True).first()


def test_second_start_raises_and_creates_no_duplicate(store, merchant):
    first = services.start_training(store, ["popularity"], user=merchant)  # on_commit not run: stays queued
    with pytest.raises(errors.TrainingAlreadyRunning, match=f"#{first.pk}"):
        services.start_training(store, ["ease"], user=merchant)
    with store_scope(store):
        assert TrainingRun.objects.count() == 1


def test_lock_is_per_store(store, other_store):
    mine = services.start_training(store, ["popularity"])  # on_commit not run: stays queued
    theirs = services.start_training(other_store, ["popularity"])  # another store's run takes its own lock
    assert mine.pk != theirs.pk
    assert (mine.store_id, mine.status) == (store.pk, JobStatus.QUEUED)
    assert (theirs.store_id, theirs.status) == (other_store.pk, JobStatus.QUEUED)
    with store_scope(store):
        assert list(TrainingRun.objects.values_list("pk", flat=True)) == [mine.pk]
    with store_scope(other_store):
        assert list(TrainingRun.objects.values_list("pk", flat=True)) == [theirs.pk]
    # Each store is still locked by its own run, and the error names that run.
    with pytest.raises(errors.TrainingAlreadyRunning, match=f"#{mine.pk}"):
        services.start_training(store, ["popularity"])
    with pytest.raises(errors.TrainingAlreadyRunning, match=f"#{theirs.pk}"):
        services.start_training(other_store, ["popularity"])


def test_unknown_algorithm_is_refused(store):
    with pytest.raises(ValueError, match="unknown algorithm"):
        services.start_training(store, ["nope"])


def test_full_eager_run_activates_a_verified_version(store, shop_data, merchant, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = services.start_training(store, ["popularity", "item_knn"], user=merchant)
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED, run.error
    assert run.progress == 100 and run.stage == "done"
    assert run.started_at and run.finished_at and run.attempts == 1
    assert {"loading data", "splitting holdout", "writing artifacts", "activating"} <= set(run.timings)
    assert run.data_stats["n_users"] == 12 and run.data_stats["n_items"] == 6
    assert run.metrics["holdout"]["n_test_users"] > 0
    assert set(run.metrics["algorithms"]) == {"popularity", "item_knn"}
    assert 0.0 <= run.metrics["algorithms"]["item_knn"]["ndcg@10"] <= 1.0
    assert run.gate["passed"] is True
    versions = _versions(store)
    assert len(versions) == 2
    active = _active(store)
    assert active.algorithm == run.metrics["best"] and active.pk == run.gate["activated"]
    path = artifacts.artifact_path(active)
    assert path.exists() and len(active.checksum) == 64
    assert artifacts.file_sha256(path) == (active.checksum, active.size_bytes)
    with np.load(path, allow_pickle=False) as archive:  # id maps travel with the artifact
        assert sorted(archive["shop__user_ids"].tolist()) == sorted(c.pk for c in shop_data["customers"])
    loaded = artifacts.load_active_model(store)
    assert loaded.version.pk == active.pk and not loaded.is_fallback
    row = loaded.row_of(shop_data["customers"][0].pk)
    ids, _ = loaded.model.recommend(row, services.build_interactions(store).matrix[row], N=3)
    assert len(ids) == 3


def test_holdout_metrics_use_a_capped_sample_of_users(store, shop_data, settings):
    everyone = services.train_store(store, algorithms=["popularity"])
    n_all = everyone.metrics["algorithms"]["popularity"]["n_test_users"]
    assert n_all > 2
    settings.TRAINING_EVAL_MAX_USERS = 2
    capped = services.train_store(store, algorithms=["popularity"])
    assert capped.metrics["algorithms"]["popularity"]["n_test_users"] == 2


def test_train_store_default_trains_and_activates(store, shop_data):
    run = services.train_store(store)
    assert run.status == JobStatus.SUCCEEDED
    assert _active(store).algorithm in services.DEFAULT_ALGORITHMS


def test_gate_refuses_a_much_worse_refresh(store, shop_data):
    services.train_store(store, ["popularity"])
    incumbent = _active(store)
    ModelVersion.all_stores.filter(pk=incumbent.pk).update(metrics={"ndcg@10": 0.999})
    run = services.train_store(store, ["popularity"], params={"_gate": {"max_drop": 0.1}})
    assert run.status == JobStatus.SUCCEEDED
    assert run.gate["kind"] == "refresh"
    assert run.gate["passed"] is False and run.gate["activated"] is None
    assert "below the active" in run.gate["reason"]
    assert _active(store).pk == incumbent.pk


def test_failed_run_leaves_active_version_untouched(store, shop_data, monkeypatch):
    services.train_store(store, ["popularity"])
    before = _active(store)
    n_versions = len(_versions(store))

    def boom(self, *args, **kwargs):
        raise RuntimeError("factorisation exploded")

    monkeypatch.setattr(registry.ALGORITHMS["item_knn"], "fit", boom)
    with pytest.raises(errors.TrainingError, match="factorisation exploded"):
        services.train_store(store, ["item_knn"])
    with store_scope(store):
        run = TrainingRun.objects.first()
    assert run.status == JobStatus.FAILED and "RuntimeError: factorisation exploded" in run.error
    assert run.finished_at is not None
    assert _active(store).pk == before.pk and len(_versions(store)) == n_versions
    # the lock is released: a new run can start
    services.start_training(store, ["popularity"])


def test_empty_store_fails_clearly(store):
    with pytest.raises(errors.TrainingError, match="no usable interactions"):
        services.train_store(store, ["popularity"])


def test_corrupt_artifact_falls_back_to_previous_version(store, shop_data, caplog):
    services.train_store(store, ["popularity"])
    first = _active(store)
    services.train_store(store, ["item_knn"])
    second = _active(store)
    assert second.pk != first.pk
    path = artifacts.artifact_path(second)
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")  # bit rot
    artifacts.clear_model_cache()
    loaded = artifacts.load_active_model(store)
    assert loaded.version.pk == first.pk and loaded.is_fallback
    assert "unusable" in caplog.text
    second.refresh_from_db()
    assert second.corrupt_at is not None
    with pytest.raises(VersionNotUsable):
        activation.activate_version(second)


def test_missing_artifact_is_refused_on_activation(store, shop_data):
    services.train_store(store, ["popularity"])
    services.train_store(store, ["item_knn"], params={"_gate": {"activate": False}})
    candidate = [v for v in _versions(store) if not v.is_active][0]
    artifacts.artifact_path(candidate).unlink()
    with pytest.raises(ArtifactCorrupt):
        activation.activate_version(candidate)
    assert _active(store).algorithm == "popularity"


def test_rollback_reactivates_previous(store, shop_data):
    services.train_store(store, ["popularity"])
    first = _active(store)
    services.train_store(store, ["item_knn"])
    assert activation.previous_version(store).pk == first.pk
    activation.rollback_to(activation.previous_version(store))
    assert _active(store).pk == first.pk
    assert artifacts.load_active_model(store).version.pk == first.pk


def test_no_model_yet_loads_none(store):
    assert artifacts.load_active_model(store) is None


def test_stale_running_run_is_failed_and_releases_the_lock(store):
    run = services.start_training(store, ["popularity"])
    TrainingRun.all_stores.filter(pk=run.pk).update(
        status=JobStatus.RUNNING, heartbeat_at=timezone.now() - timedelta(days=1)
    )
    services.start_training(store, ["popularity"])  # the dead run no longer holds the lock
    run.refresh_from_db()
    assert run.status == JobStatus.FAILED and "worker" in run.error


def test_redelivered_run_restarts_then_gives_up(store, shop_data):
    run = services.start_training(store, ["popularity"])
    # a worker claimed it and died (attempt 1): redelivery restarts it
    TrainingRun.all_stores.filter(pk=run.pk).update(status=JobStatus.RUNNING, attempts=1)
    assert services.run_training(run.pk).status == JobStatus.SUCCEEDED
    run2 = services.start_training(store, ["popularity"])
    TrainingRun.all_stores.filter(pk=run2.pk).update(status=JobStatus.RUNNING, attempts=services.MAX_ATTEMPTS)
    before = _active(store).pk
    assert services.run_training(run2.pk).status == JobStatus.FAILED
    assert _active(store).pk == before
    # a duplicate delivery of a finished run changes nothing
    assert services.run_training(run.pk).status == JobStatus.SUCCEEDED


def test_train_store_command(store, shop_data, capsys):
    call_command("train_store", "alpha", "--algorithm", "popularity", verbosity=0)
    assert "succeeded" in capsys.readouterr().out
    assert _active(store).algorithm == "popularity"


def test_activation_records_who_and_why_and_signals(store, shop_data, merchant):
    received = []

    def listener(sender, store_id, version_id, **kwargs):
        received.append((store_id, version_id))

    activation.version_activated.connect(listener)
    try:
        run = services.train_store(store, ["popularity"], user=merchant)
        first = _active(store)
        assert first.activated_by == merchant and first.activation_reason.startswith(f"training run #{run.pk}")
        services.train_store(store, ["item_knn"])
        first.refresh_from_db()
        activation.rollback_to(first, user=merchant, reason="the new one is worse")
    finally:
        activation.version_activated.disconnect(listener)
    first.refresh_from_db()
    assert first.is_active and first.activated_by == merchant and first.activation_reason == "the new one is worse"
    assert received[0] == (store.pk, first.pk) and received[-1] == (store.pk, first.pk) and len(received) == 3
