"""``Idempotency-Key`` support for write endpoints (events single and batch, product bulk).

Contract:

* The first request with a key runs; if its answer is a success (2xx) the answer is stored in an
  ``IdempotencyRecord`` **in the same transaction as the writes**, so either both exist or neither.
* A retry with the same key and a byte-identical body returns the stored answer (same status and
  body) with the header ``Idempotent-Replayed: true`` and writes nothing.
* The same key with a different body is a client bug: 422 ``idempotency_key_reused``.
* Only 2xx answers are stored. A 4xx means nothing was written, so a retry should be evaluated
  again (a batch rejected for an unknown sku succeeds once the catalog has the product); a 5xx
  must be retryable by definition.
* Concurrent duplicates: the record is inserted *before* the writes. The second request blocks on
  the unique index (store, endpoint, key) until the first commits, then gets an IntegrityError,
  its transaction (and any writes) is rolled back, and it replays the first answer. If the first
  rolls back instead, the second simply proceeds. No double write either way.

Keys are scoped per store and endpoint and kept ``IDEMPOTENCY_TTL_HOURS`` (purge with
``purge_expired_idempotency_records``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from shop_recs.api.errors import error_response
from shop_recs.api.models import IdempotencyRecord
from shop_recs.stores.models import Store
from shop_recs.stores.scoping import store_scope

__all__ = [
    "IDEMPOTENCY_HEADER",
    "IDEMPOTENCY_PARAM",
    "MAX_KEY_LENGTH",
    "REPLAYED_HEADER",
    "run_idempotent",
    "purge_expired_idempotency_records",
]

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
#: The OpenAPI description of the header, for ``extend_schema(parameters=[...])``.
IDEMPOTENCY_PARAM = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="Optional. A retry with the same key and body replays the first answer "
    "(header Idempotent-Replayed: true); the same key with another body is a 422.",
)
MAX_KEY_LENGTH = 200


class _Rollback(Exception):  # noqa: N818 - internal control flow, never escapes this module
    def __init__(self, response: Response):
        self.response = response


def _replay(record: IdempotencyRecord, request_hash: str) -> Response:
    if record.request_hash != request_hash:
        return error_response(
            "idempotency_key_reused",
            f"The Idempotency-Key {record.key!r} was already used with a different request body. "
            "Use a new key for a new request.",
            http_status=status.HTTP_422_UNPROCESSABLE_ENTITY,
        )
    return Response(record.response_body, status=record.response_status, headers={REPLAYED_HEADER: "true"})


def _find(store: Store, endpoint: str, key: str) -> IdempotencyRecord | None:
    cutoff = timezone.now() - timedelta(hours=settings.IDEMPOTENCY_TTL_HOURS)
    with store_scope(store):
        record = IdempotencyRecord.objects.filter(endpoint=endpoint, key=key).first()
        if record is not None and record.created_at < cutoff:
            # Expired: forget it so the key can be used again.
            IdempotencyRecord.objects.filter(pk=record.pk).delete()
            return None
    return record


def run_idempotent(request: Request, store: Store, endpoint: str, action: Callable[[], Response]) -> Response:
    """Run ``action`` (which performs the writes and returns the answer) with idempotency.

    ``action`` runs inside ``transaction.atomic()``; a non-2xx answer rolls its writes back. The
    raw request body must still be readable: call this before touching ``request.data``, or make
    sure ``request.body`` was read first.
    """
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return _atomic(action)
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH:
        return error_response(
            "invalid_idempotency_key", f"{IDEMPOTENCY_HEADER} must be 1 to {MAX_KEY_LENGTH} characters."
        )
    # "Same body" means byte-identical: hashing the raw bytes costs ~1 ms for a 10,000-event batch,
    # canonicalising the parsed JSON would cost tens. Clients retry by resending the same bytes.
    request_hash = hashlib.sha256(request.body).hexdigest()
    record = _find(store, endpoint, key)
    if record is not None:
        return _replay(record, request_hash)
    try:
        with transaction.atomic():
            with store_scope(store):
                record = IdempotencyRecord.objects.create(
                    store=store,
                    endpoint=endpoint,
                    key=key,
                    request_hash=request_hash,
                    response_status=0,
                    response_body={},
                )
            response = _atomic(action, savepoint=False)
            if not 200 <= response.status_code < 300:
                raise _Rollback(response)
            record.response_status = response.status_code
            record.response_body = response.data
            record.save(update_fields=["response_status", "response_body"])
    except _Rollback as rollback:
        return rollback.response
    except IntegrityError:
        # Most likely a concurrent request with the same key committed first: replay its answer.
        record = _find(store, endpoint, key)
        if record is None:
            raise
        return _replay(record, request_hash)
    return response


def _atomic(action: Callable[[], Response], savepoint: bool = True) -> Response:
    if not savepoint:
        return action()
    try:
        with transaction.atomic():
            response = action()
            if not 200 <= response.status_code < 300:
                raise _Rollback(response)
    except _Rollback as rollback:
        return rollback.response
    return response


def purge_expired_idempotency_records(ttl: timedelta | None = None) -> int:
    """Delete idempotency records older than the TTL, across all stores; returns how many.

    A client retrying after the TTL is treated as a new request, so the TTL must comfortably exceed
    any client's retry horizon (48 h by default, ``IDEMPOTENCY_TTL_HOURS``).
    """
    cutoff = timezone.now() - (ttl or timedelta(hours=settings.IDEMPOTENCY_TTL_HOURS))
    # all stores: a periodic task with no store at hand; the same rule holds for every store.
    deleted, _ = IdempotencyRecord.all_stores.filter(created_at__lt=cutoff).delete()
    return deleted
