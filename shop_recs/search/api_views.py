"""Search REST API v1: ``GET /api/v1/search``. A thin view over ``services.search_products``.

The answer is built as plain dicts (no per-item serializer): this is a serving endpoint. The
serializers below only document the schema. A GET with a valid API key and valid parameters is
served without DRF (``shop_recs.api.fastpath.fast_get_view``: same authentication, store scope and JSON
bytes); anything else goes through the DRF view, so error responses are DRF's.
"""

from __future__ import annotations

import math

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from shop_recs.api.errors import error_response
from shop_recs.api.fastpath import FastGetMixin, json_response
from shop_recs.api.openapi import examples
from shop_recs.api.scope import StoreScopedAPIMixin
from shop_recs.catalog.api_views import ERRORS
from shop_recs.search.services import MAX_QUERY_LENGTH, MAX_RESULTS, SearchOutcome, search_products
from shop_recs.serving.serializers import CardFieldsSerializer

TAG = ["search"]
MAX_OFFSET = 1000


class SearchItemSerializer(CardFieldsSerializer):
    """A search hit: the card fields every served item carries, then the scores."""

    score = serializers.FloatField(help_text="Final score (text blended with personal, after store boosts).")
    text_score = serializers.FloatField(help_text="BM25F relevance, scaled so the best match is 1.")
    personal_score = serializers.FloatField(
        allow_null=True, help_text="The active model's score for the customer, scaled 0..1; null when not personal."
    )


class SearchResultSerializer(serializers.Serializer):
    query = serializers.CharField()
    corrected_query = serializers.CharField(
        allow_null=True, help_text="Set when unknown words were auto-corrected (results are for this query)."
    )
    did_you_mean = serializers.CharField(
        allow_null=True, help_text="A suggestion when the query found little and a far more common word is close."
    )
    total = serializers.IntegerField(help_text="Matching products (at most 200 are ranked).")
    n = serializers.IntegerField()
    offset = serializers.IntegerField()
    personalized = serializers.BooleanField()
    list_id = serializers.CharField(allow_null=True, help_text="Attribution id of this list, when list logging is on.")
    items = SearchItemSerializer(many=True)


class _BadParam(Exception):  # noqa: N818 - internal control flow
    def __init__(self, field: str, reason: str) -> None:
        self.field, self.reason = field, reason


def _int_param(params, name: str, default: int, lo: int, hi: int) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _BadParam(name, "must be an integer") from None
    if not lo <= value <= hi:
        raise _BadParam(name, f"must be between {lo} and {hi}")
    return value


def _price_param(params, name: str) -> float | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    try:
        value = float(raw)
    except ValueError:
        raise _BadParam(name, "must be a number") from None
    if not math.isfinite(value) or value < 0:
        raise _BadParam(name, "must be a finite number >= 0")
    return value


def outcome_payload(outcome: SearchOutcome, n: int, offset: int) -> dict:
    return {
        "query": outcome.query,
        "corrected_query": outcome.corrected_query,
        "did_you_mean": outcome.did_you_mean,
        "total": outcome.total,
        "n": n,
        "offset": offset,
        "personalized": outcome.personalized,
        "list_id": outcome.list_id,
        # The hit's card is the catalog snapshot's (the same dict shape as every recommendation item).
        "items": [
            {**h.card, "score": h.score, "text_score": h.text_score, "personal_score": h.personal_score}
            for h in outcome.hits
        ],
    }


def _search_params(params) -> dict | None:
    """The validated arguments of ``search_products``, or ``None`` when the request is invalid."""
    query = params.get("q", "")
    if not query.strip() or len(query) > MAX_QUERY_LENGTH:
        return None
    try:
        n = _int_param(params, "n", 20, 1, MAX_RESULTS)
        offset = _int_param(params, "offset", 0, 0, MAX_OFFSET)
        min_price = _price_param(params, "min_price")
        max_price = _price_param(params, "max_price")
    except _BadParam:
        return None
    if min_price is not None and max_price is not None and min_price > max_price:
        return None
    return {
        "query": query,
        "n": n,
        "offset": offset,
        "customer_external_id": params.get("customer") or None,
        "category": params.get("category") or None,
        "min_price": min_price,
        "max_price": max_price,
        "session_id": params.get("session", ""),
    }


def _search_fast(request, store):
    kw = _search_params(request.GET)
    if kw is None:
        return None  # the DRF view answers with the exact error
    query, n, offset = kw.pop("query"), kw["n"], kw["offset"]
    outcome = search_products(store, query, **kw)
    return json_response(outcome_payload(outcome, n, offset))


class SearchView(FastGetMixin, StoreScopedAPIMixin, APIView):
    fast_get = staticmethod(_search_fast)

    @extend_schema(
        operation_id="searchProducts",
        examples=examples("searchProducts"),
        tags=TAG,
        summary="Search the store's products",
        description=(
            "Full-text search (BM25F over title, brand, category path and description; title weighs most) "
            "with accent folding, plurals, Chinese character bigrams, typo correction and prefix matching of "
            "the last word (search-as-you-type). For a known `customer`, the top 200 text matches are "
            "re-ranked with the active recommendation model. Store rules (blocked, inactive, out-of-stock, "
            "boosts, pins) apply. Every query is logged for the dashboard's search insights."
        ),
        parameters=[
            OpenApiParameter("q", str, required=True, description=f"The query, 1-{MAX_QUERY_LENGTH} characters."),
            OpenApiParameter("n", int, description=f"Results per page (1-{MAX_RESULTS}, default 20)."),
            OpenApiParameter("offset", int, description=f"Results to skip (0-{MAX_OFFSET})."),
            OpenApiParameter("customer", str, description="The shop's customer id, for personal ranking."),
            OpenApiParameter("session", str, description="Session id, recorded in the query log."),
            OpenApiParameter("category", str, description="Category path; the subtree is included."),
            OpenApiParameter("min_price", float),
            OpenApiParameter("max_price", float),
        ],
        responses={200: SearchResultSerializer, **ERRORS},
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        query = params.get("q", "")
        if not query.strip():
            return error_response("invalid_input", "The query is empty.", [{"field": "q", "reason": "required"}])
        if len(query) > MAX_QUERY_LENGTH:
            return error_response(
                "invalid_input",
                f"The query is longer than {MAX_QUERY_LENGTH} characters.",
                [{"field": "q", "reason": f"at most {MAX_QUERY_LENGTH} characters"}],
            )
        try:
            n = _int_param(params, "n", 20, 1, MAX_RESULTS)
            offset = _int_param(params, "offset", 0, 0, MAX_OFFSET)
            min_price = _price_param(params, "min_price")
            max_price = _price_param(params, "max_price")
            if min_price is not None and max_price is not None and min_price > max_price:
                raise _BadParam("min_price", "must not exceed max_price")
        except _BadParam as exc:
            return error_response(
                "invalid_input", f"Invalid parameter {exc.field!r}.", [{"field": exc.field, "reason": exc.reason}]
            )
        outcome = search_products(
            self.store,
            query,
            n=n,
            offset=offset,
            customer_external_id=params.get("customer") or None,
            category=params.get("category") or None,
            min_price=min_price,
            max_price=max_price,
            session_id=params.get("session", ""),
        )
        return Response(outcome_payload(outcome, n, offset))
