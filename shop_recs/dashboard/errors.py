"""The dashboard's styled error pages: 403, 404, 500 and the 503 "database unavailable" page.

* :class:`DashboardErrorPagesMiddleware` answers what a dashboard view raises (``Http404``,
  ``PermissionDenied``, an unreachable database) with the styled page, in DEBUG too: otherwise an
  unknown SKU shows Django's debug 404 in development and a bare "403 Forbidden" everywhere.
* :func:`handler403`, :func:`handler404` and :func:`handler500` (``shop_recs.urls``) cover the rest
  when DEBUG is off: unknown URLs, and errors raised outside a view (a middleware, a session save).
  ``handler500`` answers the 503 page when the error was the database being unreachable.
* :func:`csrf_failure` (``CSRF_FAILURE_VIEW``) answers a form whose CSRF token was missing or stale
  (a page left open across a log-out, cookies blocked) with a styled 403 that says what to do,
  instead of Django's bare "Forbidden (403) CSRF verification failed".
* API paths are left to ``shop_recs.api.errors``: they keep their JSON errors.

The 500 and 503 pages render without the request's context processors (no user, no session, no
store), so they need no database: the page shown during an outage must not itself need the database.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils.cache import add_never_cache_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import csrf, defaults

from shop_recs.api.errors import API_PREFIX, DB_RETRY_AFTER_SECONDS, DB_UNREACHABLE
from shop_recs.platform.middleware import NO_DATABASE_ATTR

logger = logging.getLogger(__name__)

TEMPLATES = {
    403: "errors/403.html",
    404: "errors/404.html",
    500: "errors/500.html",
    503: "errors/503.html",
}
CSRF_TEMPLATE = "errors/403_csrf.html"


def _is_api(request: HttpRequest) -> bool:
    return request.path_info.startswith(API_PREFIX)


def client_error_page(request: HttpRequest, status: int) -> HttpResponse:
    """The 403 or 404 page inside the dashboard shell (with the store's sidebar once it was resolved)."""
    return render(request, TEMPLATES[status], {"error_status": status}, status=status)


def _standalone(status: int, context: dict[str, object]) -> HttpResponse:
    # No request: no context processor runs, so nothing here can touch the database.
    response = HttpResponse(render_to_string(TEMPLATES[status], {"error_status": status, **context}), status=status)
    add_never_cache_headers(response)
    setattr(response, NO_DATABASE_ATTR, True)  # PrivatePagesMiddleware must not load the user for it
    return response


def database_unavailable_page(request: HttpRequest) -> HttpResponse:
    """503 with ``Retry-After``: the database cannot be reached (the page's own HTML needs no database)."""
    response = _standalone(503, {"path": request.get_full_path(), "retry_after": DB_RETRY_AFTER_SECONDS})
    response["Retry-After"] = str(DB_RETRY_AFTER_SECONDS)
    return response


def server_error_page(request: HttpRequest) -> HttpResponse:
    """The 500 page (rendered without the database)."""
    return _standalone(500, {})


class DashboardErrorPagesMiddleware:
    """Styled pages for ``Http404``, ``PermissionDenied`` and an unreachable database raised by a view."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if _is_api(request):
            return None
        if isinstance(exc, DB_UNREACHABLE):
            # An outage is not a bug to page anyone about per request: one warning line.
            logger.warning("database unreachable: 503 page for %s %s (%s)", request.method, request.path_info, exc)
            return database_unavailable_page(request)
        if isinstance(exc, Http404):
            return client_error_page(request, 404)
        if isinstance(exc, PermissionDenied):
            return client_error_page(request, 403)
        return None  # Django's own handling: the debug page in DEBUG, handler500 otherwise


def handler403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return defaults.permission_denied(request, exception)
    return client_error_page(request, 403)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """``CSRF_FAILURE_VIEW``: the form could not be checked, so nothing was saved; say how to recover.

    Rendered in the dashboard shell with the request (the CSRF check runs after the session and the
    user are known). ``reason`` is Django's technical text, logged rather than shown to a merchant.
    """
    if _is_api(request):
        return csrf.csrf_failure(request, reason)
    logger.info("CSRF check failed for %s %s: %s", request.method, request.path_info, reason)
    # "Back to the form" goes to the page the form was on, when that page is on this site: the
    # failed URL itself is often POST-only (remove a member), so reloading it would be a 405.
    referer = request.META.get("HTTP_REFERER", "")
    safe = url_has_allowed_host_and_scheme(
        referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    context = {"error_status": 403, "retry_url": referer if referer and safe else ""}
    response = render(request, CSRF_TEMPLATE, context, status=403)
    add_never_cache_headers(response)
    return response


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return defaults.page_not_found(request, exception)
    return client_error_page(request, 404)


def handler500(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return defaults.server_error(request)
    # Django calls the 500 handler while handling the exception, so it is still current here.
    if isinstance(sys.exc_info()[1], DB_UNREACHABLE):
        return database_unavailable_page(request)
    return server_error_page(request)
