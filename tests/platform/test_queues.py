"""Task routing: every task of the project is named in ``shop_recs.celery.TASK_QUEUES``; training,
evaluation and tuning go to the heavy queue, everything else (and every periodic job) to the default one."""

from __future__ import annotations

import pytest
from django.conf import settings

from shop_recs.celery import DEFAULT, HEAVY, TASK_QUEUES, app
from tests.conftest import publishing_to

HEAVY_TASKS = {
    "shop_recs.training.tasks.train_model",
    "analytics.evaluation.tasks.run_evaluation_task",
    "analytics.evaluation.tasks.prepare_tuning_task",
    "analytics.evaluation.tasks.run_tuning_trial",
    "analytics.evaluation.tasks.finalise_tuning_task",
}


def _project_tasks() -> set[str]:
    app.loader.import_default_modules()  # what a worker does at start: import every app's tasks module
    # The project's own: tests register probe tasks of their own in the same app (tests.platform...).
    return {name for name in app.tasks if name.startswith(("shop_recs.", "analytics."))}


def _queue(name: str) -> str:
    """The queue Celery's own router picks for a task sent by name (what ``delay`` does)."""
    return app.amqp.router.route({}, name)["queue"].name


def test_every_task_of_the_project_has_an_explicit_route():
    tasks = _project_tasks()
    assert len(tasks) >= 17  # a scan that found nothing would prove nothing
    assert tasks - set(TASK_QUEUES) == set(), "add the new task to shop_recs.celery.TASK_QUEUES"
    assert set(TASK_QUEUES) - tasks == set(), "TASK_QUEUES names a task that no longer exists"
    assert set(TASK_QUEUES.values()) == {HEAVY, DEFAULT}


@pytest.mark.parametrize("name", sorted(TASK_QUEUES))
def test_heavy_tasks_go_to_heavy_and_the_rest_to_default(name):
    assert settings.CELERY_TASK_DEFAULT_QUEUE == "default" and settings.CELERY_HEAVY_QUEUE == "heavy"
    assert _queue(name) == ("heavy" if name in HEAVY_TASKS else "default")


def test_every_periodic_job_goes_to_the_default_queue():
    # Beat's entries are housekeeping; enqueue_due_trainings only *sends* train_model (to heavy).
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        assert _queue(entry["task"]) == "default", entry["task"]


def test_a_renamed_queue_applies_at_once():
    """Tests (``publishing_to``) and deployments rename the queues; the router reads them per send."""
    with publishing_to("private-q", "redis://127.0.0.1:1/0"):
        assert _queue("shop_recs.training.tasks.train_model") == "private-q"
        assert _queue("analytics.tasks.purge_old_logs_task") == "private-q"
    assert _queue("shop_recs.training.tasks.train_model") == "heavy"
    assert _queue("analytics.tasks.purge_old_logs_task") == "default"


def test_a_task_sent_through_apply_async_lands_in_its_queue():
    """Through ``apply_async`` and a broker (kombu's in-memory transport), not only the router."""
    from kombu import Connection

    from shop_recs.training import tasks

    eager, app.conf.task_always_eager = app.conf.task_always_eager, False
    try:
        with Connection("memory://") as conn:
            heavy, default = conn.SimpleQueue("heavy"), conn.SimpleQueue("default")
            tasks.train_model.apply_async((1,), connection=conn)
            tasks.enqueue_due_trainings.apply_async(connection=conn)
            got_heavy, got_default = heavy.get(timeout=2), default.get(timeout=2)
            assert got_heavy.headers["task"] == "shop_recs.training.tasks.train_model"
            assert got_default.headers["task"] == "shop_recs.training.tasks.enqueue_due_trainings"
            assert heavy.qsize() == 0 and default.qsize() == 0
            heavy.close()
            default.close()
    finally:
        app.conf.task_always_eager = eager


def test_a_worker_started_without_q_consumes_both_queues():
    """``celery -A shop_recs worker`` with no ``-Q`` (a small installation's one worker) runs everything."""
    assert set(app.amqp.queues.consume_from) == {"default", "heavy"}
    for queue in app.amqp.queues.consume_from.values():  # the same binding a missing queue would get
        assert queue.exchange.name == queue.name and queue.routing_key == queue.name
