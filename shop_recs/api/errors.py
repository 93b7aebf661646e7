"""One error shape for the whole API: ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

from typing import Any, Protocol

from django_scopes.exceptions import ScopeError
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


def exception_handler(exc, context):
    if isinstance(exc, ScopeError):
        # A view forgot to activate the store scope: a programming error, never a data leak.
        raise exc
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
