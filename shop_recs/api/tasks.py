"""Celery tasks of the API layer. Thin: each calls one service and returns its outcome."""

from __future__ import annotations

from celery import shared_task

from shop_recs.api.idempotency import purge_expired_idempotency_records


@shared_task(acks_late=True, time_limit=600, soft_time_limit=540)
def purge_idempotency_records() -> int:
    return purge_expired_idempotency_records()
