"""The browser's middleware, passed by for ``/api/v1/`` requests.

Sessions, the signed-in user, flash messages and django-csp's nonce policy serve the dashboard
and the admin. An ``/api/v1/`` request authenticates with an API key (DRF's ``ApiKeyAuthentication``;
the views are CSRF-exempt and never read a session), so for it these layers only cost time: together
~0.17 ms of the ~0.70 ms of CPU a cached recommendation took through Django's test client, and the
shop's frontend sends one event and asks for recommendations on every page view
(``benchmarks/serve.py``; figures in docs/benchmarks_serve.md § fifth pass).

Each class here *is* the Django or django-csp middleware (a subclass, so Django's admin checks still
find ``SessionMiddleware``, ``AuthenticationMiddleware`` and ``MessageMiddleware``), with its
request, view and response hooks skipped when the path is under ``/api/v1/``. Everything the API
does need stays in ``MIDDLEWARE`` unchanged: metrics, request ids, ``SecurityMiddleware``, CORS, the
JSON error shape, rate limits, ``LocaleMiddleware`` (the reason texts follow ``Accept-Language``),
``CommonMiddleware``, ``X-Frame-Options`` and Django's own ``CsrfViewMiddleware`` (``manage.py check
--deploy`` looks for that exact class; for the API it is cheap: no cookie, and the views are
csrf_exempt). One chain for both, so Django's test client runs exactly what gunicorn runs.
"""

from __future__ import annotations

from typing import Any

from csp.middleware import CSPMiddleware as _CSPMiddleware
from django.contrib.auth.middleware import AuthenticationMiddleware as _AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware as _MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware as _SessionMiddleware
from django.http import HttpRequest, HttpResponse

from shop_recs.api.errors import API_PREFIX

__all__ = [
    "API_CONTENT_SECURITY_POLICY",
    "AuthenticationMiddleware",
    "CSPMiddleware",
    "MessageMiddleware",
    "SessionMiddleware",
]

#: The policy of every ``/api/v1/`` answer: JSON is never a document that loads or frames anything,
#: so nothing is allowed (the usual header of JSON APIs; a constant, no nonce to build).
API_CONTENT_SECURITY_POLICY = "default-src 'none'; frame-ancestors 'none'"


def _is_api(request: HttpRequest) -> bool:
    return request.path_info.startswith(API_PREFIX)


class _BrowserOnly:
    """Mixin over a ``MiddlewareMixin`` middleware: ``/api/v1/`` requests go straight to the next layer."""

    get_response: Any

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if _is_api(request):
            return self.get_response(request)
        return super().__call__(request)  # type: ignore[misc]


class SessionMiddleware(_BrowserOnly, _SessionMiddleware):
    pass


class AuthenticationMiddleware(_BrowserOnly, _AuthenticationMiddleware):
    pass


class MessageMiddleware(_BrowserOnly, _MessageMiddleware):
    pass


class CSPMiddleware(_BrowserOnly, _CSPMiddleware):
    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not _is_api(request):
            return super().__call__(request)
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", API_CONTENT_SECURITY_POLICY)
        return response
