"""Serving REST API v1: recommendations, similar items, frequently bought together, popular, trending.

Hot path: views validate the query by hand (no serializers), call ``serving`` and return plain dicts.
The serializers in ``serializers.py`` exist only to document the shapes in the OpenAPI schema.

The GET endpoints that shop frontends call on every page view (customer recommendations, similar
items; search uses the same helper) are served by ``shop_recs.api.fastpath.fast_get_view`` (a plain
Django view; anything that is not a plain success falls through to the DRF view, so error responses
stay exactly DRF's). Query parameters are parsed by ``shop_recs.api.params``.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from shop_recs.activity.models import Customer
from shop_recs.api.errors import error_response
from shop_recs.api.fastpath import FastGetMixin, json_response
from shop_recs.api.openapi import examples
from shop_recs.api.params import BadInput, bad_input_response, float_param, int_param, sku_list_param, text_param
from shop_recs.api.scope import StoreScopedAPIMixin
from shop_recs.catalog.serializers import ErrorSerializer
from shop_recs.serving import live_activity
from shop_recs.serving import services as serving
from shop_recs.serving.experiments import log_variant_list, running_experiments, variant_model
from shop_recs.serving.placements import serve_customer_placement
from shop_recs.serving.serializers import RecommendationResponseSerializer, SessionRequestSerializer
from shop_recs.serving.snapshot import catalog_snapshot
from shop_recs.stores.models import Store

TAG = ["serving"]
ERRORS = {400: ErrorSerializer, 401: ErrorSerializer, 403: ErrorSerializer}
N_MAX = serving.MAX_N
OFFSET_MAX = 500


def _filters(params: Any, snap: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "category": text_param(params, "category", 1000) or None,
        "min_price": float_param(params, "min_price", 0.0),
        "max_price": float_param(params, "max_price", 0.0),
        "diversity": float_param(params, "diversity", 0.0, 1.0),
    }
    if out["min_price"] is not None and out["max_price"] is not None and out["min_price"] > out["max_price"]:
        raise BadInput("min_price", "must not exceed max_price")
    if exclude := sku_list_param(params, "exclude"):
        # Unknown skus in an exclusion list are harmless (the shop may exclude what we never saw).
        sku_to_pk = snap.sku_to_pk
        out["exclude_ids"] = {sku_to_pk[s] for s in exclude if s in sku_to_pk}
    text_param(params, "placement", 100)  # refused here (400) rather than failing later in a query
    return out


def _unknown_sku(sku: str) -> Response:
    return error_response(
        "not_found", f"No product {sku!r} in this store.", {"sku": sku}, http_status=status.HTTP_404_NOT_FOUND
    )


# --- A/B experiments ----------------------------------------------------------------------------------


def serve_customer(
    store: Store,
    customer: Any,
    external_id: str,
    *,
    n: int,
    offset: int,
    placement: str,
    filters: dict[str, Any],
) -> dict[str, Any]:
    """Customer recommendations, through the placement's running experiment when there is one.

    Without an experiment this is exactly ``recommend_for_customer(...).as_dict()``. With one, the
    customer key (the external id; shops send the session id for anonymous visitors) is hashed to a
    variant, which picks the model (``model=``/``algorithm=``) or a rule override; the list is logged
    here with the variant's version and ``variant = "<experiment id>:<variant id>"``, and the response
    adds ``experiment`` and ``variant``.
    """
    exp = running_experiments(store.pk).get(placement) if placement else None
    if exp is None:
        # The placement's rules, and its model when it chose an algorithm of the active run.
        return serve_customer_placement(store, customer, n=n, offset=offset, placement=placement, filters=filters)
    spec = exp.assign(external_id)
    model, version = variant_model(store, spec)
    if spec.rule_overrides:
        filters = {**filters, "overrides": spec.rule_overrides}
    result = serving.recommend_for_customer(
        store,
        customer,
        n=n,
        offset=offset,
        placement=placement,
        filters=filters,
        model=model,
        algorithm=version.algorithm if version is not None else None,
        log=False,
    )
    # A customer without history gets trending whatever the variant: the version did not serve it.
    version_id = version.pk if version is not None and result.algorithm != "trending" else result.model_version
    list_id = log_variant_list(
        store.pk,
        [c.product_id for c in result.candidates],
        placement=placement,
        customer_id=getattr(customer, "pk", None),
        model_version_id=version_id,
        algorithm=result.algorithm,
        variant=spec.tag,
    )
    payload = result.as_dict()
    payload.update(list_id=list_id, model_version=version_id, experiment=exp.pk, variant=spec.name)
    return payload


# --- the plain-Django fast path (``shop_recs.api.fastpath``) --------------------------------------


def _customer_fast(request: HttpRequest, store: Any, external_id: str) -> HttpResponse | None:
    params = request.GET
    snap = catalog_snapshot(store)
    try:
        n = int_param(params, "n", 10, 1, N_MAX)
        offset = int_param(params, "offset", 0, 0, OFFSET_MAX)
        filters = _filters(params, snap)
    except BadInput:
        return None
    # The customer with their latest events and purchases: from this process's cache when it may
    # answer, else one round trip. An unknown customer is None, exactly like the DRF view's ``.first()``.
    customer = live_activity.serving_customer(store.pk, external_id)
    payload = serve_customer(
        store, customer, external_id, n=n, offset=offset, placement=params.get("placement", ""), filters=filters
    )
    return json_response(payload)


def _similar_fast(request: HttpRequest, store: Any, sku: str) -> HttpResponse | None:
    try:
        n = int_param(request.GET, "n", 10, 1, N_MAX)
    except BadInput:
        return None
    pk = catalog_snapshot(store).sku_to_pk.get(sku)
    if pk is None:
        return None
    result = serving.similar_products(store, pk, n=n, placement=request.GET.get("placement", ""))
    return json_response(result.as_dict())


# The bounds in the schema are the ones int_param enforces (a raw schema dict: OpenApiParameter has no min/max).
N_SCHEMA = {"type": "integer", "minimum": 1, "maximum": N_MAX}
N_PARAM = OpenApiParameter("n", N_SCHEMA, description=f"How many items (1..{N_MAX}, default 10).")
PLACEMENT_SCHEMA = {"type": "string", "maxLength": 100}
PLACEMENT = OpenApiParameter(
    "placement", PLACEMENT_SCHEMA, description="Where the list is shown (home, pdp, cart, ...)."
)
FILTER_PARAMS = [
    OpenApiParameter("category", str, description="Category path; the subtree is included."),
    OpenApiParameter("min_price", OpenApiTypes.NUMBER),
    OpenApiParameter("max_price", OpenApiTypes.NUMBER),
    OpenApiParameter("diversity", OpenApiTypes.NUMBER, description="0..1 (MMR); default: the store rules'."),
]


class CustomerRecommendationsView(FastGetMixin, StoreScopedAPIMixin, APIView):
    fast_get = staticmethod(_customer_fast)

    @extend_schema(
        operation_id="getCustomerRecommendations",
        examples=examples("getCustomerRecommendations"),
        tags=TAG,
        summary="Recommendations for a customer",
        description="From the active model plus the customer's latest events (real time). An unknown customer or "
        "one with no history gets trending products (per country when the customer's country has enough activity).",
        parameters=[
            N_PARAM,
            OpenApiParameter(
                "offset",
                {"type": "integer", "minimum": 0, "maximum": OFFSET_MAX},
                description=f"Skip this many (0..{OFFSET_MAX}).",
            ),
            *FILTER_PARAMS,
            OpenApiParameter("exclude", str, description="Comma-separated skus to leave out."),
            PLACEMENT,
        ],
        responses={200: RecommendationResponseSerializer, **ERRORS},
    )
    def get(self, request: Request, external_id: str) -> Response:
        params = request.query_params
        snap = catalog_snapshot(self.store)
        try:
            n = int_param(params, "n", 10, 1, N_MAX)
            offset = int_param(params, "offset", 0, 0, OFFSET_MAX)
            filters = _filters(params, snap)
        except BadInput as exc:
            return bad_input_response(exc)
        customer = Customer.objects.filter(external_id=external_id).only("pk", "country").first()
        payload = serve_customer(
            self.store,
            customer,
            external_id,
            n=n,
            offset=offset,
            placement=params.get("placement", ""),
            filters=filters,
        )
        return Response(payload)


class SessionRecommendationsView(StoreScopedAPIMixin, APIView):
    @extend_schema(
        operation_id="getSessionRecommendations",
        examples=examples("getSessionRecommendations"),
        tags=TAG,
        summary="Recommendations for an anonymous visitor",
        description="Item-based, from the products viewed in this session (oldest first). Unknown skus are "
        "ignored; products the model does not know contribute through content similarity.",
        request=SessionRequestSerializer,
        responses={200: RecommendationResponseSerializer, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        data = request.data
        if not isinstance(data, dict):
            return error_response("invalid_body", "Expected a JSON object.")
        viewed = data.get("viewed", [])
        if not isinstance(viewed, list) or not all(isinstance(s, str) for s in viewed) or len(viewed) > 200:
            return bad_input_response(BadInput("viewed", "must be a list of at most 200 skus"))
        snap = catalog_snapshot(self.store)
        try:
            n = int_param({"n": data.get("n")}, "n", 10, 1, N_MAX)
            filters = _filters(data, snap)
        except BadInput as exc:
            return bad_input_response(exc)
        placement = data.get("placement") or ""
        if not isinstance(placement, str):
            return bad_input_response(BadInput("placement", "must be a string"))
        pks = [snap.sku_to_pk[s] for s in viewed if s in snap.sku_to_pk]
        result = serving.recommend_for_session(self.store, pks, n=n, placement=placement, filters=filters)
        return Response(result.as_dict())


class SimilarProductsView(FastGetMixin, StoreScopedAPIMixin, APIView):
    fast_get = staticmethod(_similar_fast)

    @extend_schema(
        operation_id="getSimilarProducts",
        examples=examples("getSimilarProducts"),
        tags=TAG,
        summary="Products similar to one product",
        description="A blend of collaborative (the active model) and content similarity, so new products have "
        "neighbours too.",
        parameters=[N_PARAM, PLACEMENT],
        responses={200: RecommendationResponseSerializer, 404: ErrorSerializer, **ERRORS},
    )
    def get(self, request: Request, sku: str) -> Response:
        try:
            n = int_param(request.query_params, "n", 10, 1, N_MAX)
        except BadInput as exc:
            return bad_input_response(exc)
        pk = catalog_snapshot(self.store).sku_to_pk.get(sku)
        if pk is None:
            return _unknown_sku(sku)
        result = serving.similar_products(self.store, pk, n=n, placement=request.query_params.get("placement", ""))
        return Response(result.as_dict())


class FrequentlyBoughtTogetherView(StoreScopedAPIMixin, APIView):
    @extend_schema(
        operation_id="getFrequentlyBoughtTogether",
        examples=examples("getFrequentlyBoughtTogether"),
        tags=TAG,
        summary="Frequently bought together",
        description="Co-purchases (same order, or same customer and day without an order id) ranked by lift, "
        "pairs below the minimum support (FBT_MIN_SUPPORT baskets) left out. Precomputed per store.",
        parameters=[OpenApiParameter("n", N_SCHEMA, description=f"How many items (1..{N_MAX}, default 5)."), PLACEMENT],
        responses={200: RecommendationResponseSerializer, 404: ErrorSerializer, **ERRORS},
    )
    def get(self, request: Request, sku: str) -> Response:
        try:
            n = int_param(request.query_params, "n", 5, 1, N_MAX)
        except BadInput as exc:
            return bad_input_response(exc)
        pk = catalog_snapshot(self.store).sku_to_pk.get(sku)
        if pk is None:
            return _unknown_sku(sku)
        result = serving.frequently_bought_together(
            self.store, pk, n=n, placement=request.query_params.get("placement", "")
        )
        return Response(result.as_dict())


class _NonPersonalView(StoreScopedAPIMixin, APIView):
    kind = "popular"

    def get(self, request: Request) -> Response:
        params = request.query_params
        snap = catalog_snapshot(self.store)
        try:
            n = int_param(params, "n", 10, 1, N_MAX)
            filters = _filters(params, snap)
        except BadInput as exc:
            return bad_input_response(exc)
        result = serving.popular(self.store, self.kind, n=n, placement=params.get("placement", ""), filters=filters)
        return Response(result.as_dict())


class PopularView(_NonPersonalView):
    kind = "popular"

    @extend_schema(
        operation_id="getPopularProducts",
        examples=examples("getPopularProducts"),
        tags=TAG,
        summary="Most popular products",
        description="By distinct customers, overall or within a category.",
        parameters=[N_PARAM, *FILTER_PARAMS, PLACEMENT],
        responses={200: RecommendationResponseSerializer, **ERRORS},
    )
    def get(self, request: Request) -> Response:
        return super().get(request)


class TrendingView(_NonPersonalView):
    kind = "trending"

    @extend_schema(
        operation_id="getTrendingProducts",
        examples=examples("getTrendingProducts"),
        tags=TAG,
        summary="Trending products",
        description="Time-decayed weighted activity of the last 30 days, overall or within a category.",
        parameters=[N_PARAM, *FILTER_PARAMS, PLACEMENT],
        responses={200: RecommendationResponseSerializer, **ERRORS},
    )
    def get(self, request: Request) -> Response:
        return super().get(request)
