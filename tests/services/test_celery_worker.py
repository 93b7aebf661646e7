"""The real path: a task sent through Redis is executed by a separate Celery worker process."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from shop_recs.api.idempotency import purge_expired_idempotency_records
from shop_recs.api.models import IdempotencyRecord
from shop_recs.api.tasks import purge_idempotency_records
from shop_recs.stores.scoping import unscoped
from tests.services.conftest import wait_for


def _record(store, key: str, age: timedelta) -> IdempotencyRecord:
    with unscoped():
        return IdempotencyRecord.objects.create(
            store=store,
            key=key,
            endpoint="events.batch",
            request_hash="x" * 64,
            response_status=201,
            response_body={"ok": True},
            created_at=timezone.now() - age,
        )


def test_purge_keeps_records_within_ttl(store, other_store):
    _record(store, "old", timedelta(hours=100))
    _record(other_store, "old", timedelta(hours=100))
    _record(store, "fresh", timedelta(hours=1))
    assert purge_expired_idempotency_records(timedelta(hours=48)) == 2
    with unscoped():
        assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["fresh"]


def test_real_worker_runs_task_from_redis(celery_worker, make_store):
    store = make_store("Worker Shop", slug="worker")
    _record(store, "old", timedelta(hours=100))
    _record(store, "fresh", timedelta(minutes=5))
    result = purge_idempotency_records.delay()
    assert result.id

    def only_fresh_left():
        with unscoped():
            return list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["fresh"]

    wait_for(only_fresh_left, timeout=60, proc=celery_worker)
