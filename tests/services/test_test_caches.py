"""Emptying the caches between tests leaves the Celery broker's queues alone.

With Redis, the Django cache and the Celery broker share one database. ``cache.clear()`` there is a
FLUSHDB, and running it around every test deleted tasks that a test on another xdist worker had just
queued for its real worker (that test then waited forever for a run to start).
"""

from __future__ import annotations

import pytest
import redis

from tests.conftest import clear_test_caches, require_redis

pytestmark = pytest.mark.services


def test_clearing_the_test_caches_keeps_queued_broker_messages(settings):
    require_redis()
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    queue = "test-canary-queue"
    broker.delete(queue)
    broker.lpush(queue, b"a queued task message")
    try:
        clear_test_caches()
        assert broker.llen(queue) == 1
    finally:
        broker.delete(queue)
