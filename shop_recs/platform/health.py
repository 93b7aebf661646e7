"""``GET /healthz``: a plain Django JSON view with a fixed answer.

It touches neither the database nor the cache, so a load balancer can poll it cheaply and it is the
framework's floor in ``benchmarks/serve.py`` (what one request costs through Django's middleware
with no work of its own).
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

_BODY = {"status": "ok"}


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse(_BODY)
