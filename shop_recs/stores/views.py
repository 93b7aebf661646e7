"""The sign-in lockout page (django-axes calls :func:`locked_out` through ``AXES_LOCKOUT_CALLABLE``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def locked_out(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: Any = None
) -> HttpResponse:
    """HTTP 429 with ``Retry-After`` and a page that says what happened and when to try again."""
    cooloff = settings.AXES_COOLOFF_TIME
    context = {"failure_limit": settings.AXES_FAILURE_LIMIT, "cooloff_minutes": int(cooloff.total_seconds() // 60)}
    response = render(request, "registration/locked_out.html", context, status=429)
    response["Retry-After"] = str(int(cooloff.total_seconds()))
    return response
