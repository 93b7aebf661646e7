"""Ad serving REST API v1: ``GET /ads`` and ``POST /ads/impressions/<id>/click``.

Hot path like the recommendation views: the query is validated by hand and plain dicts are
returned; the serializers below only document the shapes in the OpenAPI schema. A valid ``GET /ads``
is answered without DRF (``FastGetMixin``: same key check, store scope and JSON); anything else
(a bad ``n``, no key) goes through the DRF view for its exact error.
"""

from __future__ import annotations

import uuid

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from shop_recs.ads import services
from shop_recs.api.errors import error_response
from shop_recs.api.fastpath import FastGetMixin, json_response
from shop_recs.api.openapi import examples
from shop_recs.api.params import BadInput, bad_input_response, int_param
from shop_recs.api.scope import StoreScopedAPIMixin
from shop_recs.catalog.serializers import ErrorSerializer

TAG = ["ads"]
ERRORS = {400: ErrorSerializer, 401: ErrorSerializer, 403: ErrorSerializer}


class AdProductSerializer(serializers.Serializer):
    """A promoted product, with the same card fields as the recommendation and search items."""

    sku = serializers.CharField()
    title = serializers.CharField()
    image_url = serializers.CharField(
        allow_null=True, help_text="The product's image (null when the catalog has none)."
    )
    url = serializers.CharField(allow_null=True, help_text="The product page (null when the catalog has none).")
    price = serializers.CharField(
        allow_null=True, help_text='Decimal string with two places, e.g. "12.50"; null when unpriced.'
    )
    currency = serializers.CharField(help_text="The product's currency, else the store's (ISO 4217).")
    in_stock = serializers.BooleanField()


class AdSerializer(serializers.Serializer):
    impression_id = serializers.UUIDField(help_text="Send it back with the click and in purchase context.")
    campaign_id = serializers.IntegerField()
    title = serializers.CharField()
    image_url = serializers.CharField(help_text="The campaign's creative image.")
    landing_url = serializers.CharField()
    score = serializers.FloatField(help_text="weight x (0.1 + 0.9 x predicted affinity)")
    products = AdProductSerializer(many=True, help_text="Up to 4 promoted products as product cards.")


class AdResponseSerializer(serializers.Serializer):
    slot = serializers.CharField()
    customer_known = serializers.BooleanField()
    ads = AdSerializer(many=True)


class ClickResponseSerializer(serializers.Serializer):
    impression_id = serializers.UUIDField()
    counted = serializers.BooleanField(help_text="False when this impression had already been clicked.")


def _ads_fast(request, store):
    """The plain-Django answer to a valid ``GET /ads`` (``None``: let DRF answer with its error)."""
    params = request.GET
    try:
        n = int_param(params, "n", 1, 1, services.MAX_ADS)
    except BadInput:
        return None
    result = services.serve_ads(store, params.get("customer") or None, slot=params.get("slot", "")[:100], n=n)
    return json_response(result.as_dict())


class AdsView(FastGetMixin, StoreScopedAPIMixin, APIView):
    fast_get = staticmethod(_ads_fast)

    @extend_schema(
        operation_id="getAds",
        examples=examples("getAds"),
        tags=TAG,
        summary="Ads for a visitor",
        description="Active campaigns within their dates and budget, targeted at one of the customer's segments "
        "(or untargeted) and under the customer's daily frequency cap, ranked by the customer's predicted affinity "
        "for the promoted products times the campaign weight. Each returned ad is a recorded impression. Anonymous "
        "or unknown customers get untargeted campaigns only. Fewer than n ads (possibly none) is a normal answer. "
        "A campaign is served only while its budget can pay (CPM: bid / 1000 per impression, charged now; CPC: "
        "one click) and its daily budget is within pace. Each ad carries its promoted products as product cards.",
        parameters=[
            OpenApiParameter("customer", str, description="The shop's customer id; omit for anonymous visitors."),
            OpenApiParameter("slot", str, description="Where the ad is shown (home_banner, sidebar, ...)."),
            OpenApiParameter("n", int, description=f"How many ads (1..{services.MAX_ADS}, default 1)."),
        ],
        responses={200: AdResponseSerializer, **ERRORS},
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        try:
            n = int_param(params, "n", 1, 1, services.MAX_ADS)
        except BadInput as exc:
            return bad_input_response(exc)
        slot = params.get("slot", "")[:100]
        result = services.serve_ads(self.store, params.get("customer") or None, slot=slot, n=n)
        return Response(result.as_dict())


class AdClickView(StoreScopedAPIMixin, APIView):
    @extend_schema(
        operation_id="recordAdClick",
        examples=examples("recordAdClick"),
        tags=TAG,
        summary="Record a click on an ad",
        description="Idempotent: a repeated click on the same impression is acknowledged but not counted (or "
        "charged) again. A pay-per-click (CPC) campaign is charged its bid for the first click, never past its "
        "budget; an unknown impression is not found and not charged.",
        request=None,
        responses={200: ClickResponseSerializer, 404: ErrorSerializer, **ERRORS},
    )
    def post(self, request: Request, impression_id: uuid.UUID) -> Response:
        found, first = services.record_click(impression_id, store_id=self.store.pk)
        if not found:
            return error_response(
                "not_found",
                "No such impression in this store.",
                {"impression_id": str(impression_id)},
                http_status=status.HTTP_404_NOT_FOUND,
            )
        return Response({"impression_id": str(impression_id), "counted": first})
