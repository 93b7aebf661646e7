"""Query parameter parsing for the API's hand-validated endpoints (no serializers on the hot path).

``int_param``/``float_param`` raise :class:`BadInput`; the view turns it into the standard 400 body
with :func:`bad_input_response`.
"""

from __future__ import annotations

import math
from typing import Any

from rest_framework.response import Response

from shop_recs.api.errors import error_response

__all__ = ["BadInput", "bad_input_response", "float_param", "int_param"]


class BadInput(Exception):  # noqa: N818
    """An invalid request parameter: which one, and why."""

    def __init__(self, field: str, reason: str) -> None:
        self.field, self.reason = field, reason


def int_param(params: Any, name: str, default: int, lo: int, hi: int) -> int:
    """``params[name]`` as an integer in ``lo..hi`` (``default`` when absent or empty)."""
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise BadInput(name, "must be an integer") from None
    if not lo <= value <= hi:
        raise BadInput(name, f"must be between {lo} and {hi}")
    return value


def float_param(params: Any, name: str, lo: float | None = None, hi: float | None = None) -> float | None:
    """``params[name]`` as a finite number within the bounds (``None`` when absent or empty)."""
    raw = params.get(name)
    if raw in (None, ""):
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise BadInput(name, "must be a number") from None
    if not math.isfinite(value) or (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise BadInput(name, f"must be a finite number {bounds}")
    return value


def bad_input_response(exc: BadInput) -> Response:
    """The standard ``invalid_input`` 400 response for ``exc``."""
    return error_response(
        "invalid_input", f"Invalid query parameter {exc.field!r}.", [{"field": exc.field, "reason": exc.reason}]
    )
