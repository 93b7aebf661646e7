"""Query parameter and body parsing for the API's hand-validated endpoints (no serializers on the hot path).

``int_param``/``float_param``/``text_param``/``sku_list_param`` raise :class:`BadInput`; the view
turns it into the standard 400 body with :func:`bad_input_response`. Parsing stays cheap: no regex
is compiled per request and the common case (a short ASCII number) is two string tests.

:class:`StrictJSONParser` and :class:`BoundedLimitOffsetPagination` are DRF's JSON parser and
pagination with the limits hostile input needs (docs/api.md, "Validation").
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import JSONParser
from rest_framework.response import Response

__all__ = [
    "BadInput",
    "BoundedLimitOffsetPagination",
    "InvalidParam",
    "StrictJSONParser",
    "bad_input_response",
    "float_param",
    "int_param",
    "parse_int",
    "sku_list_param",
    "text_param",
    "with_value",
]

# The longest integer a parameter may spell: anything longer is out of every range we accept, and
# int() of a 100,000-digit string is slow.
_INT_MAX_CHARS = 12
SKU_LIST_MAX = 500


class BadInput(Exception):  # noqa: N818
    """An invalid request parameter: which one, why, and (list filters, pagination) the value refused."""

    def __init__(self, field: str, reason: str, value: str | None = None) -> None:
        self.field, self.reason, self.value = field, reason, value


def parse_int(raw: object) -> int | None:
    """``raw`` as an int when it spells one in ASCII digits (``int()`` alone also takes ``"١٢"``,
    ``" 5"``, ``"1_0"`` and JSON's ``true``/``5.0``); ``None`` otherwise."""
    if type(raw) is int:
        return raw
    if type(raw) is not str or not raw or len(raw) > _INT_MAX_CHARS or not raw.isascii():
        return None
    digits = raw[1:] if raw[0] == "-" else raw
    return int(raw) if digits.isdigit() else None


def int_param(params: Any, name: str, default: int, lo: int, hi: int) -> int:
    """``params[name]`` as an integer in ``lo..hi`` (``default`` when absent or JSON null).

    An empty value (``?n=``) is not an integer: it is refused, as the schema says.
    """
    raw = params.get(name)
    if raw is None:
        return default
    value = parse_int(raw)
    if value is None:
        if type(raw) is str and raw.lstrip("-").isascii() and raw.lstrip("-").isdigit():
            raise BadInput(name, f"must be between {lo} and {hi}")  # digits, but too many of them
        raise BadInput(name, "must be an integer")
    if not lo <= value <= hi:
        raise BadInput(name, f"must be between {lo} and {hi}")
    return value


def float_param(params: Any, name: str, lo: float | None = None, hi: float | None = None) -> float | None:
    """``params[name]`` as a finite number within the bounds (``None`` when absent or empty)."""
    raw = params.get(name)
    if raw in (None, ""):
        return None
    if type(raw) is bool or (type(raw) is str and len(raw) > 64):
        raise BadInput(name, "must be a number")
    try:
        value = float(raw)
    except (TypeError, ValueError, OverflowError):
        raise BadInput(name, "must be a number") from None
    if not math.isfinite(value) or (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise BadInput(name, f"must be a finite number {bounds}")
    return value


def text_param(params: Any, name: str, max_length: int = 200) -> str:
    """``params[name]`` as text ("" when absent or null): a string without NUL bytes, at most ``max_length``."""
    raw = params.get(name)
    if raw is None:
        return ""
    if type(raw) is not str:
        raise BadInput(name, "must be a string")
    if len(raw) > max_length:
        raise BadInput(name, f"must be at most {max_length} characters")
    if "\x00" in raw:
        raise BadInput(name, "must not contain NUL bytes")
    return raw


def sku_list_param(params: Any, name: str) -> list[str]:
    """A comma-separated list of skus (or, in a JSON body, a list of strings), spaces around each
    trimmed and empty entries dropped: ``"A, B,,C"`` -> ``["A", "B", "C"]``."""
    raw = params.get(name)
    if raw is None or raw == "":
        return []
    if type(raw) is str:
        items = raw.split(",")
    elif type(raw) is list and all(type(s) is str for s in raw):
        items = raw
    else:
        raise BadInput(name, "must be a comma-separated string of skus or a list of skus")
    if len(items) > SKU_LIST_MAX:
        raise BadInput(name, f"must name at most {SKU_LIST_MAX} skus")
    return [s for s in (item.strip() for item in items) if s]


def bad_input_response(exc: BadInput) -> Response:
    """The standard ``invalid_input`` 400 response for ``exc`` (``errors.error_response``'s shape, built
    here: DRF imports this module for its parser setting while ``errors`` is still importing DRF)."""
    return Response(_invalid_input_body(exc), status=status.HTTP_400_BAD_REQUEST)


def _invalid_input_body(exc: BadInput | list[BadInput]) -> dict[str, Any]:
    """One ``{field, reason}`` per bad parameter, plus ``value`` when the caller knows it (list filters,
    pagination); the message names the parameter and, for a single one with a value, the value."""
    problems = exc if isinstance(exc, list) else [exc]
    if len(problems) == 1:
        only = problems[0]
        shown = f": {only.value!r}" if only.value is not None else ""
        message = f"Invalid query parameter {only.field!r}{shown}."
    else:
        message = "Invalid query parameters " + ", ".join(repr(p.field) for p in problems) + "."
    details = [
        {"field": p.field, "reason": p.reason} | ({"value": p.value} if p.value is not None else {}) for p in problems
    ]
    return {"error": {"code": "invalid_input", "message": message, "details": details}}


class InvalidParam(APIException):
    """``BadInput`` raised where DRF expects an exception (pagination, list filters): the same 400 body."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid_input"

    def __init__(self, exc: BadInput | list[BadInput]) -> None:
        super().__init__(_invalid_input_body(exc))


def with_value(exc: BadInput, params: Any) -> BadInput:
    """``exc`` with the refused value attached (cut to 100 characters: the answer is not an echo service)."""
    raw = params.get(exc.field)
    text = "" if raw is None else str(raw)
    return BadInput(exc.field, exc.reason, text if len(text) <= 100 else text[:100] + "…")


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    """``?limit=&offset=`` with bounds: a bad or huge value is a 400, not a bigint overflow (500).

    ``?limit=100000`` is refused (400 naming the maximum), not clamped: a client that asked for
    everything and silently got 1,000 rows would take them for the whole list. The page size
    without ``limit`` is ``REST_FRAMEWORK["PAGE_SIZE"]`` (100); the answer keeps DRF's
    ``{count, next, previous, results}`` shape, which clients and docs/api.md rely on.
    """

    max_limit = 1000
    max_offset = 10_000_000

    def get_limit(self, request: Any) -> int:
        try:
            return int_param(request.query_params, self.limit_query_param, self.default_limit, 1, self.max_limit)
        except BadInput as exc:
            raise InvalidParam(with_value(exc, request.query_params)) from None

    def get_offset(self, request: Any) -> int:
        try:
            return int_param(request.query_params, self.offset_query_param, 0, 0, self.max_offset)
        except BadInput as exc:
            raise InvalidParam(with_value(exc, request.query_params)) from None

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        """DRF's two parameters, with the bounds and the default the schema would otherwise not state."""
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.limit_query_param:
                parameter["schema"].update(minimum=1, maximum=self.max_limit)
                parameter["description"] = (
                    f"Results per page: 1..{self.max_limit}, default {self.default_limit}; more is a 400."
                )
            elif parameter["name"] == self.offset_query_param:
                parameter["schema"].update(minimum=0, maximum=self.max_offset)
        return parameters


# A JSON escape that decodes to NUL or to a lone surrogate. Valid pairs (emoji) do not match; an
# escaped backslash followed by "u0000" may, and the parsed value is then checked exactly.
_SUSPECT_ESCAPE = re.compile(
    r"\\u0000|\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)
_BAD_CHAR = re.compile("[\x00\ud800-\udfff]")


def _bad_text_in(data: Any) -> str | None:
    """The first string (key or value) in ``data`` holding NUL or a lone surrogate (iterative walk)."""
    stack = [data]
    while stack:
        item = stack.pop()
        if type(item) is str:
            if _BAD_CHAR.search(item):
                return item
        elif type(item) is dict:
            stack.extend(item.keys())
            stack.extend(item.values())
        elif type(item) is list:
            stack.extend(item)
    return None


def _refuse_constant(name: str) -> None:
    raise ParseError(f"JSON parse error - {name} is not a number")


class StrictJSONParser(JSONParser):
    """DRF's JSON parser, plus: nesting Python cannot parse, integers over 4,300 digits, NUL bytes
    and lone surrogates (which PostgreSQL cannot store) are a 400 ``parse_error``, never a 500."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        encoding = (parser_context or {}).get("encoding") or "utf-8"  # DRF passes the request's encoding
        try:
            text = stream.read().decode(encoding)
            data = json.loads(text, parse_constant=_refuse_constant)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply") from None
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, the int digit limit
            raise ParseError(f"JSON parse error - {str(exc)[:200]}") from None
        if "\\u" in text and _SUSPECT_ESCAPE.search(text) and (bad := _bad_text_in(data)) is not None:
            what = "NUL bytes" if "\x00" in bad else "lone surrogates"
            raise ParseError(f"JSON parse error - text must not contain {what}")
        return data
