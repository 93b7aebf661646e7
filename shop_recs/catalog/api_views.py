"""Catalog REST API v1: thin views over ``shop_recs.catalog.services``."""

from __future__ import annotations

from django.conf import settings
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import generics
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from shop_recs.api.errors import error_response, invalid_rows_response, not_found
from shop_recs.api.filters import StrictFilterBackend
from shop_recs.api.idempotency import IDEMPOTENCY_PARAM, run_idempotent
from shop_recs.api.openapi import examples
from shop_recs.api.scope import StoreScopedAPIMixin
from shop_recs.catalog.filters import ProductFilter
from shop_recs.catalog.models import Product
from shop_recs.catalog.serializers import (
    ErrorSerializer,
    ProductBulkRowSerializer,
    ProductInputSerializer,
    ProductSerializer,
    UpsertResultSerializer,
)
from shop_recs.catalog.services import InvalidRows, deactivate_product, upsert_products

# The schema's error responses; ErrorSerializer lives in catalog.serializers (error_response and
# the other helpers are in shop_recs.api.errors).
ERRORS = {400: ErrorSerializer, 401: ErrorSerializer, 403: ErrorSerializer}
TAG = ["catalog"]


class ProductQuerysetMixin(StoreScopedAPIMixin):
    def get_queryset(self) -> QuerySet[Product]:
        # Evaluated inside the request's store scope, so the scoped manager filters by store.
        return Product.objects.select_related("category")


# The operation id and examples on the GET (extend_schema_view): on the class they would also apply to
# any method a list view gains, and drf-spectacular warns about that.
@extend_schema_view(get=extend_schema(operation_id="listProducts", examples=examples("listProducts")))
@extend_schema(
    tags=TAG,
    description="Paginated with `limit` (1..1000, default 100; more is a 400) and `offset`. The filters are "
    "combined with AND; a value a filter cannot read is a 400 `invalid_input` naming the parameter and the value.",
    responses={200: ProductSerializer(many=True), **ERRORS},
)
class ProductListView(ProductQuerysetMixin, generics.ListAPIView):
    """List the store's products (paginated with ``limit``/``offset``, filtered by ``ProductFilter``)."""

    serializer_class = ProductSerializer
    filter_backends = [StrictFilterBackend]
    filterset_class = ProductFilter


class ProductDetailView(ProductQuerysetMixin, APIView):
    """One product by sku: read, create-or-replace, deactivate."""

    @extend_schema(
        operation_id="getProduct",
        examples=examples("getProduct"),
        tags=TAG,
        responses={200: ProductSerializer, 404: ErrorSerializer, **ERRORS},
    )
    def get(self, request: Request, sku: str) -> Response:
        product = self.get_queryset().filter(sku=sku).first()
        if product is None:
            return not_found("product", sku)
        return Response(ProductSerializer(product).data)

    @extend_schema(
        operation_id="putProduct",
        examples=examples("putProduct"),
        tags=TAG,
        summary="Create or replace a product",
        request=ProductInputSerializer,
        responses={200: ProductSerializer, 201: ProductSerializer, **ERRORS},
    )
    def put(self, request: Request, sku: str) -> Response:
        data = request.data
        if not isinstance(data, dict):
            return error_response("invalid_body", "Expected a JSON object.")
        if data.get("sku", sku) != sku:
            return error_response(
                "invalid_input", "The sku in the body differs from the URL.", [{"field": "sku", "reason": "mismatch"}]
            )
        try:
            result = upsert_products(self.store, [{**data, "sku": sku}])
        except InvalidRows as exc:
            return invalid_rows_response(exc, single=True)
        product = self.get_queryset().get(sku=sku)
        return Response(ProductSerializer(product).data, status=201 if result.created else 200)

    @extend_schema(
        operation_id="deleteProduct",
        examples=examples("deleteProduct"),
        tags=TAG,
        summary="Deactivate a product (never deleted)",
        responses={200: ProductSerializer, 404: ErrorSerializer, **ERRORS},
    )
    def delete(self, request: Request, sku: str) -> Response:
        product = deactivate_product(self.store, sku)
        if product is None:
            return not_found("product", sku)
        return Response(ProductSerializer(product).data)


class ProductDeactivateView(StoreScopedAPIMixin, APIView):
    @extend_schema(
        operation_id="deactivateProduct",
        examples=examples("deactivateProduct"),
        tags=TAG,
        summary="Deactivate a product (never deleted)",
        request=None,
        responses={200: ProductSerializer, 404: ErrorSerializer, **ERRORS},
    )
    def post(self, request: Request, sku: str) -> Response:
        product = deactivate_product(self.store, sku)
        if product is None:
            return not_found("product", sku)
        return Response(ProductSerializer(product).data)


class ProductBulkView(StoreScopedAPIMixin, APIView):
    @extend_schema(
        operation_id="bulkUpsertProducts",
        examples=examples("bulkUpsertProducts"),
        tags=TAG,
        summary="Create or replace many products",
        description="A JSON list of products (at most PRODUCT_BATCH_MAX). Validated as a whole: any bad row "
        "gives a 400 `invalid_rows` naming every bad row by index, field and reason, and nothing is written.",
        parameters=[IDEMPOTENCY_PARAM],
        request=ProductBulkRowSerializer(many=True),
        responses={200: UpsertResultSerializer, 422: ErrorSerializer, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        def action() -> Response:
            try:
                result = upsert_products(self.store, request.data, max_rows=settings.PRODUCT_BATCH_MAX)
            except InvalidRows as exc:
                return invalid_rows_response(exc)
            return Response({"created": result.created, "updated": result.updated, "count": result.count})

        return run_idempotent(request, self.store, "products.bulk", action)
