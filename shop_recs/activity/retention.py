"""Retention of short-lived bookkeeping rows."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from shop_recs.api.models import IdempotencyRecord
from shop_recs.stores.scoping import unscoped


def purge_expired_idempotency_records(ttl: timedelta | None = None) -> int:
    """Delete idempotency records older than the TTL, across all stores; returns how many.

    A client retrying after the TTL is treated as a new request, so the TTL must comfortably
    exceed any client's retry horizon (48 h by default, ``IDEMPOTENCY_TTL_HOURS``).
    """
    ttl = ttl or timedelta(hours=settings.IDEMPOTENCY_TTL_HOURS)
    cutoff = timezone.now() - ttl
    with unscoped():  # platform maintenance: the same rule for every store
        deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted
