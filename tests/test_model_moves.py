"""Model moves keep the data: a database at the pre-move head migrates forward with every row intact.

Ten models changed app (``recommend`` -> ``training``/``serving``, ``experiments`` -> ``serving``,
``evaluation`` -> ``training``, ``activity`` -> ``api``) through state-only migrations. This test
migrates the test database back to the heads before the move, writes rows through the historical
models, migrates forward to today's leaves, and reads the same rows through today's models. It also
checks the content types followed, so permissions and admin history stay attached.
"""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from shop_recs.api.models import IdempotencyRecord
from shop_recs.serving.models import Experiment, RecommendationList, StoreRules, Variant
from shop_recs.training.models import (
    EvaluationSettings,
    ModelVersion,
    StoreTrainingConfig,
    TrainingRun,
    TrainingSchedule,
)

#: The heads before the move (commit 93147cb), and the apps that did not exist then.
BEFORE_MOVE = [
    # stores too: a store column added since (Store.language) must not be in the table the historical
    # Store model writes to.
    ("stores", "0001_initial"),
    ("recommend", "0003_training_schedule"),
    ("experiments", "0001_initial"),
    ("evaluation", "0001_initial"),
    ("activity", "0002_event_lean_foreign_keys"),
    ("training", None),
    ("serving", None),
    ("api", None),
]

MOVED = {
    ("recommend", "trainingrun"): "training",
    ("recommend", "modelversion"): "training",
    ("recommend", "trainingschedule"): "training",
    ("recommend", "storerules"): "serving",
    ("recommend", "recommendationlist"): "serving",
    ("experiments", "experiment"): "serving",
    ("experiments", "variant"): "serving",
    ("evaluation", "evaluationsettings"): "training",
    ("evaluation", "storetrainingconfig"): "training",
    ("activity", "idempotencyrecord"): "api",
}


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor


@pytest.fixture
def back_to_the_leaves():
    """Whatever the test does, the database ends at today's migrations: a failure half-way must not leave
    later tests on an old schema (they failed with a missing column once)."""
    yield
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("back_to_the_leaves")
def test_rows_written_before_the_move_are_read_after_it():
    executor = _migrate(BEFORE_MOVE)
    old_nodes = [node for node in BEFORE_MOVE if node[1]] + [("contenttypes", "0002_remove_content_type_name")]
    old = executor.loader.project_state(old_nodes).apps
    now = timezone.now()
    store = old.get_model("stores", "Store").objects.create(name="Moved shop", slug="moved-shop")
    run = old.get_model("recommend", "TrainingRun").objects.create(store=store, algorithms=["ease"], status="succeeded")
    version = old.get_model("recommend", "ModelVersion").objects.create(
        store=store, run=run, algorithm="ease", artifact_path="x.npz", checksum="c" * 64, is_active=True
    )
    old.get_model("recommend", "TrainingSchedule").objects.create(store=store, daily_hour=3, last_run=run)
    old.get_model("recommend", "StoreRules").objects.create(store=store, boost_weight=0.5)
    old.get_model("recommend", "RecommendationList").objects.create(
        store=store, list_id=uuid.uuid4(), endpoint="customer", model_version=version, product_ids=[1, 2]
    )
    experiment = old.get_model("experiments", "Experiment").objects.create(
        store=store, name="Hybrid or EASE", placement="home", status="running", started_at=now
    )
    old.get_model("experiments", "Variant").objects.create(
        store=store, experiment=experiment, name="control", kind="active", traffic=50, model_version=version
    )
    old.get_model("evaluation", "EvaluationSettings").objects.create(store=store, max_metric_drop=0.05)
    old.get_model("evaluation", "StoreTrainingConfig").objects.create(store=store, algorithms=["ease"])
    old.get_model("activity", "IdempotencyRecord").objects.create(
        store=store, key="k1", endpoint="events", request_hash="h", response_status=201, response_body={"ok": 1}
    )
    content_type = old.get_model("contenttypes", "ContentType")
    for app_label, model in MOVED:
        content_type.objects.get_or_create(app_label=app_label, model=model)

    executor = _migrate(executor.loader.graph.leaf_nodes())

    assert TrainingRun.all_stores.get(pk=run.pk).algorithms == ["ease"]
    moved_version = ModelVersion.all_stores.get(pk=version.pk)
    assert (moved_version.run_id, moved_version.is_active, moved_version.checksum) == (run.pk, True, "c" * 64)
    assert TrainingSchedule.all_stores.get(store_id=store.pk).last_run_id == run.pk
    assert StoreRules.all_stores.get(store_id=store.pk).boost_weight == 0.5
    assert RecommendationList.all_stores.get(store_id=store.pk).model_version_id == version.pk
    assert Experiment.all_stores.get(pk=experiment.pk).placement == "home"
    assert Variant.all_stores.get(experiment_id=experiment.pk).model_version_id == version.pk
    assert EvaluationSettings.all_stores.get(store_id=store.pk).max_metric_drop == 0.05
    assert StoreTrainingConfig.all_stores.get(store_id=store.pk).algorithms == ["ease"]
    assert IdempotencyRecord.all_stores.get(store_id=store.pk).response_body == {"ok": 1}

    from django.contrib.contenttypes.models import ContentType  # after the forward migration, on purpose

    for (old_label, model), new_label in MOVED.items():
        assert ContentType.objects.filter(app_label=new_label, model=model).exists(), (old_label, model)
        assert not ContentType.objects.filter(app_label=old_label, model=model).exists(), (old_label, model)


def test_the_moved_models_kept_their_tables():
    tables = {model: model._meta.db_table for model in (TrainingRun, StoreRules, Experiment, IdempotencyRecord)}
    assert tables == {
        TrainingRun: "recommend_trainingrun",
        StoreRules: "recommend_storerules",
        Experiment: "experiments_experiment",
        IdempotencyRecord: "activity_idempotencyrecord",
    }
