"""The API layer's one table: stored first answers for ``Idempotency-Key`` retries.

``IdempotencyRecord`` moved here from the ``activity`` app (catalog writes use it too, and catalog
sits below activity); its table keeps the name ``activity_idempotencyrecord`` through
``Meta.db_table``, and ``api/migrations/0001`` moves only Django's state.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from shop_recs.stores.scoping import StoreOwned


class IdempotencyRecord(StoreOwned):
    """The first answer to a request that carried an ``Idempotency-Key``, replayed on retries."""

    key = models.CharField(max_length=200)
    endpoint = models.CharField(max_length=100)
    request_hash = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField()
    response_body = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "activity_idempotencyrecord"
        verbose_name = _("idempotency record")
        verbose_name_plural = _("idempotency records")
        constraints = [
            models.UniqueConstraint(fields=["store", "endpoint", "key"], name="idempotency_store_endpoint_key_unique")
        ]
        indexes = [models.Index(fields=["created_at"], name="idempotency_created_idx")]

    def __str__(self) -> str:
        return f"{self.endpoint}:{self.key}"
