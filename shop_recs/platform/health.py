"""``GET /healthz`` (liveness) and ``GET /readyz`` (readiness).

``/healthz`` is a plain Django JSON view with a fixed answer. It touches neither the database nor the
cache, so a load balancer can poll it cheaply and it is the framework's floor in
``benchmarks/serve.py`` (what one request costs through Django's middleware with no work of its own).

``/readyz`` checks each dependency a web process needs (database, cache, broker, artifact storage)
and answers 503 when one fails, naming which: a deployment routes traffic only to ready replicas.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.core.files.storage import storages
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET
from kombu import Connection

_BODY = {"status": "ok"}


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse(_BODY)


# --- readiness ---------------------------------------------------------------------------------------


def _check_database() -> None:
    connection.ensure_connection()
    if not connection.is_usable():  # the backend's own round trip
        raise RuntimeError("the database connection is not usable")


def _check_cache() -> None:
    key = "readyz:probe"
    cache.set(key, "1", timeout=10)
    if cache.get(key) != "1":
        raise RuntimeError("the cache did not return what was written")


def _check_broker() -> str | None:
    """``None`` (skipped) in embedded mode without a broker; else a connection to the broker."""
    if not settings.CELERY_BROKER_URL:
        return "skipped: no broker (embedded mode runs jobs in the web process)"
    # A fresh connection to the configured URL (not the Celery app's pool, whose connections may be
    # older than an outage), given up after one quick attempt.
    with Connection(settings.CELERY_BROKER_URL, connect_timeout=2) as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
    return None


def _check_artifacts() -> None:
    """The model directory exists and takes a write (training and serving both need it; with S3 it is
    each process's download cache), and the artifact storage answers: with ``ARTIFACT_STORAGE=s3`` the
    bucket exists and the credentials may use it (an unreachable endpoint, a wrong bucket name or refused
    credentials raise)."""
    if settings.ARTIFACT_STORAGE == "s3":
        storage = storages["artifacts"]
        # HeadBucket, not exists(): a missing bucket makes exists() answer False instead of failing.
        storage.connection.meta.client.head_bucket(Bucket=storage.bucket_name)
    root = Path(settings.MODEL_DIR)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=root, prefix=".readyz-", delete=True) as handle:
        handle.write(b"ok")
        handle.flush()


_CHECKS = (
    ("database", _check_database),
    ("cache", _check_cache),
    ("broker", _check_broker),
    ("artifacts", _check_artifacts),
)


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """``GET /readyz``: 200 when the database, cache, broker and artifact storage all answer, else
    503; each dependency reports ``ok``, ``skipped: why`` or ``error: why`` (no secrets, no URLs)."""
    checks: dict[str, str] = {}
    ready = True
    for name, check in _CHECKS:
        try:
            note = check()
        except Exception as exc:  # noqa: BLE001 - any failure of a dependency means "not ready"
            checks[name] = f"error: {type(exc).__name__}"
            ready = False
        else:
            checks[name] = note or "ok"
    response = JsonResponse(
        {"status": "ready" if ready else "not ready", "checks": checks}, status=200 if ready else 503
    )
    response["Cache-Control"] = "no-store"
    return response
