"""One error shape for the whole API: ``{"error": {"code", "message", "details"}}``.

DRF views answer through :func:`exception_handler`; :class:`ApiErrorMiddleware` gives everything
else under ``/api/v1/`` (unknown paths, unhandled exceptions, Django's own 4xx) the same shape.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django_scopes.exceptions import ScopeError
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

#: The database cannot be reached (server stopped, restarting, connection lost): answered 503
#: ``database_unavailable`` with ``Retry-After``, so clients retry (docs/serving.md).
DB_UNREACHABLE = (OperationalError, InterfaceError)
#: Seconds a client is asked to wait before retrying after a ``database_unavailable`` answer.
DB_RETRY_AFTER_SECONDS = 5
_DB_UNAVAILABLE_MESSAGE = "The database is temporarily unavailable; retry later (nothing was written)."


def database_unavailable(request: HttpRequest | None = None) -> JsonResponse:
    """The JSON 503 for a request that needs the database while it cannot be reached."""
    response = json_error(503, "database_unavailable", _DB_UNAVAILABLE_MESSAGE, request)
    response["Retry-After"] = str(DB_RETRY_AFTER_SECONDS)
    return response


def exception_handler(exc, context):
    if isinstance(exc, ScopeError):
        # A view forgot to activate the store scope: a programming error, never a data leak.
        raise exc
    if isinstance(exc, DB_UNREACHABLE):
        request = context.get("request")
        logger.warning("database unreachable: 503 for %s", getattr(request, "path", "?"))
        return database_unavailable(getattr(request, "_request", request))
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = getattr(exc, "default_code", "error")
    detail = response.data
    if isinstance(detail, dict) and "error" in detail:
        return response
    if isinstance(detail, dict) and set(detail) == {"detail"}:
        body = {"error": {"code": code, "message": str(detail["detail"]), "details": None}}
    else:
        body = {"error": {"code": code, "message": "Invalid input.", "details": detail}}
    response.data = body
    return response


def error_response(code: str, message: str, details=None, http_status: int = status.HTTP_400_BAD_REQUEST) -> Response:
    return Response({"error": {"code": code, "message": message, "details": details}}, status=http_status)


class RejectedRows(Protocol):
    """What :func:`invalid_rows_response` needs of an ``InvalidRows`` error (catalog's or activity's)."""

    code: str
    errors: list[dict[str, Any]]


def invalid_rows_response(exc: RejectedRows, single: bool = False) -> Response:
    """The 400 answer for a rejected batch (``invalid_rows``) or a rejected single object."""
    if exc.code != "invalid_rows":
        return error_response(exc.code, exc.errors[0]["reason"], exc.errors)
    if single:
        details = [{"field": e["field"], "reason": e["reason"]} for e in exc.errors]
        return error_response("invalid_input", "The request body is invalid.", details)
    rows = len({e["index"] for e in exc.errors})
    return error_response("invalid_rows", f"{rows} row(s) are invalid; nothing was written.", exc.errors)


def not_found(what: str, key: str) -> Response:
    """The 404 answer for a store-owned object looked up by its external key."""
    return error_response("not_found", f"No {what} {key!r} in this store.", http_status=status.HTTP_404_NOT_FOUND)


# --- Every /api/v1/ answer in the error shape, whoever produced it ---------------------------

API_PREFIX = "/api/v1/"
_STATUS_CODES = {
    400: ("bad_request", "The request is malformed."),
    403: ("permission_denied", "You do not have permission to perform this action."),
    404: ("not_found", "No such API endpoint."),
    405: ("method_not_allowed", "Method not allowed."),
    413: ("request_too_large", "The request body is too large."),
    415: ("unsupported_media_type", "Unsupported media type; send application/json."),
    500: ("server_error", "Internal server error."),
    503: ("service_unavailable", "The service is temporarily unavailable; retry later."),
}
_KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate", "Vary")
logger = logging.getLogger("shop_recs.api")


def json_error(http_status: int, code: str, message: str, request: HttpRequest | None = None) -> JsonResponse:
    """A plain-Django ``{"error": ...}`` response, with the request id when the proxy sent one."""
    body: dict[str, Any] = {"code": code, "message": message, "details": None}
    request_id = request.META.get("HTTP_X_REQUEST_ID") if request is not None else None
    if request_id:
        body["request_id"] = request_id[:200]
    return JsonResponse({"error": body}, status=http_status)


def _has_nul(request: HttpRequest) -> bool:
    """A NUL byte in the path, the query string or a url-encoded form (uploaded files may hold any byte)."""
    if "\x00" in request.path_info or "%00" in request.META.get("QUERY_STRING", ""):
        return True
    if request.method == "POST" and request.content_type == "application/x-www-form-urlencoded":
        # Only url-encoded forms: parsing them keeps request.body readable; a multipart body read here
        # would be gone for a view that reads the raw body.
        return "%00" in request.body.decode("latin-1")
    return False


def _add_request_id(response: HttpResponse, request_id: str) -> None:
    """Echo the proxy's request id in a view's JSON error too (errors only: the body is re-encoded)."""
    if getattr(response, "streaming", False):
        return
    try:
        body = json.loads(response.content)
    except ValueError:
        return
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body["error"]["request_id"] = request_id[:200]
        response.content = json.dumps(body).encode()
        if response.has_header("Content-Length"):
            response["Content-Length"] = str(len(response.content))


class ApiErrorMiddleware:
    """Everywhere: refuse NUL bytes in the URL and in posted form fields (a plain 400 outside the API).

    Under ``/api/v1/``: refuse NUL bytes in the URL up front (PostgreSQL cannot compare them), turn
    an unhandled exception into a JSON 500 (logged), and re-shape any non-JSON error response
    (Django's 404 for an unknown path, 413, a 400 from a ``SuspiciousOperation``) as the JSON error.

    The check is two substring tests per API request; other paths pass straight through.
    """

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path_info.startswith(API_PREFIX):
            if _has_nul(request):
                # The dashboard and admin too: PostgreSQL cannot compare text with NUL (a 500 in any filter).
                return HttpResponseBadRequest("NUL bytes are not allowed in a URL or a form field.")
            return self.get_response(request)
        if "\x00" in request.path_info or "%00" in request.META.get("QUERY_STRING", ""):
            return json_error(400, "invalid_input", "The URL must not contain NUL bytes.", request)
        response = self.get_response(request)
        if response.status_code >= 400 and not response.get("Content-Type", "").startswith("application/json"):
            code, message = _STATUS_CODES.get(response.status_code, ("error", "The request failed."))
            shaped = json_error(response.status_code, code, message, request)
            for header in _KEPT_HEADERS:
                if header in response:
                    shaped[header] = response[header]
            return shaped
        if response.status_code >= 400 and request.META.get("HTTP_X_REQUEST_ID"):
            _add_request_id(response, request.META["HTTP_X_REQUEST_ID"])
        return response

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if not request.path_info.startswith(API_PREFIX) or isinstance(exc, ScopeError):
            return None  # a forgotten scope stays loud (see exception_handler)
        if isinstance(exc, RequestDataTooBig):
            return json_error(413, *_STATUS_CODES[413], request)
        if isinstance(exc, DB_UNREACHABLE):
            # Not a bug to page anyone about per request: one warning line, and a retryable answer.
            logger.warning("database unreachable: 503 for %s %s (%s)", request.method, request.path_info, exc)
            return database_unavailable(request)
        logger.error("unhandled error on %s %s", request.method, request.path_info, exc_info=exc)
        return json_error(500, *_STATUS_CODES[500], request)
