"""The Celery app.

With no broker configured (the embedded default) tasks run eagerly, in-process, so the demo needs no
Redis: a web process runs the jobs its pages start on its own background threads, after the response
(``shop_recs.platform.executor``, through ``platform.jobs.enqueue_on_commit``); commands run them
synchronously. With ``CELERY_BROKER_URL``/``REDIS_URL`` set they go to real workers.

Two queues (docs/operations.md, "Queues"): the CPU-heavy jobs (training, evaluation, tuning) go to
``CELERY_HEAVY_QUEUE`` ("heavy"), everything else to ``CELERY_QUEUE`` ("default"), so an hour of
training never delays attribution, imports or the periodic sweeps. :data:`TASK_QUEUES` names every
task of the project; ``tests/platform/test_queues.py`` fails when a new task is missing from it.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop_recs.settings")

HEAVY = "heavy"
DEFAULT = "default"

#: Task name -> queue kind. The queue *names* come from the configuration at send time
#: (``task_default_queue`` and ``heavy_queue``), so tests and deployments can rename them.
TASK_QUEUES: dict[str, str] = {
    # Heavy: minutes to an hour of CPU each (docs/benchmarks*.md).
    "shop_recs.training.tasks.train_model": HEAVY,
    "analytics.evaluation.tasks.run_evaluation_task": HEAVY,
    "analytics.evaluation.tasks.prepare_tuning_task": HEAVY,
    "analytics.evaluation.tasks.run_tuning_trial": HEAVY,
    "analytics.evaluation.tasks.finalise_tuning_task": HEAVY,
    # Default: short, or I/O-bound, or periodic housekeeping that must not wait behind training.
    "shop_recs.training.tasks.enqueue_due_trainings": DEFAULT,
    "shop_recs.platform.tasks.sweep_stale_jobs_task": DEFAULT,
    "shop_recs.search.tasks.rebuild_search_index": DEFAULT,
    "shop_recs.api.tasks.purge_idempotency_records": DEFAULT,
    "shop_recs.imports.tasks.run_import": DEFAULT,
    "shop_recs.ads.tasks.end_expired_campaigns_task": DEFAULT,
    "shop_recs.ads.tasks.campaign_upkeep_task": DEFAULT,
    "analytics.experiments.tasks.attribute_events_task": DEFAULT,
    "analytics.experiments.tasks.attribute_all_stores_task": DEFAULT,
    "analytics.tasks.compute_profiles_task": DEFAULT,
    "analytics.tasks.refresh_due_profiles_task": DEFAULT,
    "analytics.tasks.purge_old_logs_task": DEFAULT,
    "shop_recs.dashboard.tasks.refresh_overviews_task": DEFAULT,
}

app = Celery("shop_recs")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def queue_for(name: str) -> str:
    """The queue a task is sent to: the heavy queue for heavy tasks, else the default queue."""
    if TASK_QUEUES.get(name) == HEAVY:
        return str(app.conf.get("heavy_queue") or HEAVY)
    return str(app.conf.task_default_queue)


def route_task(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any) -> dict[str, str]:
    """``task_routes`` router: read at each send, so a changed queue name applies at once."""
    return {"queue": queue_for(name)}
