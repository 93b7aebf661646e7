"""The plain-Django fast path for the API's hottest GET endpoints and the lean event POSTs.

:func:`fast_get_view` wraps a DRF view: a GET with a valid API key is answered by a plain handler that
checks the key like ``ApiKeyAuthentication`` (against a per-process copy, ``auth.check_api_key``, and
a publishable key's route and origin with ``auth.publishable_refusal``),
enters the same store scope and renders the same JSON values as DRF would (:func:`json_response`),
without DRF's request wrapping, content negotiation and renderer. Anything that is not a plain
success (no or bad key, invalid parameters, an unknown sku) falls through to the DRF view itself, so
error responses stay exactly DRF's. ``benchmarks/serve.py`` measures the gain.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import update_wrapper
from typing import Any

import orjson
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions

from shop_recs.api import auth as auth_module
from shop_recs.api.auth import ApiKeyAuthentication
from shop_recs.platform import gcfreeze
from shop_recs.stores.models import Store
from shop_recs.stores.scoping import store_scope

__all__ = [
    "NOT_PARSED",
    "FastGetMixin",
    "FastHandler",
    "FastPostMixin",
    "fast_get_view",
    "json_body",
    "json_response",
    "store_of_key",
]

_AUTH = ApiKeyAuthentication()


def json_response(payload: Any, status: int = 200, allow: str = "GET, HEAD, OPTIONS") -> HttpResponse:
    """The JSON DRF's renderer produces with the project's settings (UTF-8, compact, U+2028/U+2029
    escaped) and its headers (``Vary: Accept``, ``Allow``), without DRF's Response.

    Encoded with orjson: ~7 µs for a page of ten items against ~30 µs with the standard library. The
    values are the same; only a float's exponent may be spelled differently (``1e-7``, not
    ``1e-07``), and a non-finite float would come out as ``null`` where DRF raises: serving's scores
    are always finite (a test compares the two renderings of a real response).
    """
    body = orjson.dumps(payload).replace(b"\xe2\x80\xa8", b"\\u2028").replace(b"\xe2\x80\xa9", b"\\u2029")
    resp = HttpResponse(body, content_type="application/json", status=status)
    resp["Vary"] = "Accept"
    resp["Allow"] = allow
    return resp


def json_body(request: HttpRequest) -> Any:
    """The request's JSON body parsed with orjson (~10x faster than the standard library), or
    :data:`NOT_PARSED` when anything is unusual (not ``application/json`` in UTF-8, not valid JSON,
    an integer beyond 64 bits, a ``\\u`` escape that could hide a NUL or a lone surrogate): the caller
    then lets DRF and ``StrictJSONParser`` answer, so every parse error stays exactly DRF's."""
    if request.content_type != "application/json":
        return NOT_PARSED
    charset = request.content_params.get("charset")
    if charset is not None and charset.lower() not in ("utf-8", "utf8"):
        return NOT_PARSED
    body = request.body
    if b"\\u" in body:
        return NOT_PARSED
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return NOT_PARSED


#: What :func:`json_body` returns when DRF must parse the body itself.
NOT_PARSED: Any = object()


#: ``handler(request, store, **url_kwargs) -> HttpResponse | None`` (``None``: let DRF answer).
FastHandler = Callable[..., "HttpResponse | None"]


def store_of_key(request: HttpRequest) -> Store | None:
    """The caller's store from its API key (``auth.check_api_key``: in process, re-read every few
    seconds), or ``None`` for anything that is not a valid live key, or a publishable key this request
    may not use (``auth.publishable_refusal``: route allow-list, origin): the caller then lets DRF
    answer, with DRF's error (its permission runs the same check)."""
    try:
        raw = _AUTH._raw_key(request)
    except exceptions.APIException:
        return None
    if raw is None:
        return None
    # Once per request: the rate limiter may have checked it, and DRF asks again on a fall-through.
    result = auth_module.request_key_check(request, raw)
    if result.store is None or result.key is None:
        return None
    if auth_module.publishable_refusal(request, result.key) is not None:
        return None
    return result.store


def fast_get_view(drf_view: Callable[..., Any], handler: FastHandler, method: str = "GET") -> Callable[..., Any]:
    """Wrap a DRF ``as_view()`` callable: GETs (or ``method``) with a valid API key go to
    ``handler(request, store, **kw)``.

    ``handler`` returns ``None`` to hand the request to the DRF view (invalid input, not found):
    it then goes through DRF from the start, so every error response is exactly DRF's. The DRF
    view's attributes (``cls``, ``initkwargs``, ``view_class``) are kept, so URL reversing and the
    OpenAPI schema see the same view.
    """

    def view(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        if request.method != method:
            return drf_view(request, *args, **kwargs)
        store = store_of_key(request)
        if store is None:
            return drf_view(request, *args, **kwargs)
        with store_scope(store):
            resp = handler(request, store, *args, **kwargs)
        gcfreeze.note_request()
        return drf_view(request, *args, **kwargs) if resp is None else resp

    update_wrapper(view, drf_view, assigned=("__module__", "__name__", "__qualname__", "__doc__"), updated=())
    for attr in ("cls", "initkwargs", "view_class", "view_initkwargs", "csrf_exempt"):
        if hasattr(drf_view, attr):
            setattr(view, attr, getattr(drf_view, attr))
    return csrf_exempt(view)


class FastGetMixin:
    """``as_view()`` returns :func:`fast_get_view` over the DRF view, with the class's ``fast_get``."""

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        drf_view = super().as_view(**initkwargs)  # type: ignore[misc]
        return fast_get_view(drf_view, cls.fast_get)


class FastPostMixin:
    """``as_view()`` answers POSTs with a valid API key with the class's ``fast_post`` (the lean write
    path; ``None`` hands the request to the DRF view, from the start)."""

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        drf_view = super().as_view(**initkwargs)  # type: ignore[misc]
        return fast_get_view(drf_view, cls.fast_post, method="POST")
