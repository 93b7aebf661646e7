"""One error shape for the whole API: ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

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
