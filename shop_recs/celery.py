"""The Celery app.

With no broker configured (the embedded default) tasks run eagerly, in-process, so the demo needs no
Redis: a web process runs the jobs its pages start on its own background threads, after the response
(``shop_recs.platform.executor``, through ``platform.jobs.enqueue_on_commit``); commands run them
synchronously. With ``CELERY_BROKER_URL``/``REDIS_URL`` set they go to real workers.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop_recs.settings")

app = Celery("shop_recs")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
