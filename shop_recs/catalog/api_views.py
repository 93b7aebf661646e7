"""Catalog REST API v1: thin views over ``shop_recs.catalog.services``."""

from __future__ import annotations

from django.conf import settings
from django.db.models import Q, QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from shop_recs.api.errors import error_response, invalid_rows_response, not_found
from shop_recs.api.idempotency import IDEMPOTENCY_PARAM, run_idempotent
from shop_recs.api.scope import StoreScopedAPIMixin
from shop_recs.catalog.models import CATEGORY_PATH_SEPARATOR, Product
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


@extend_schema(
    tags=TAG,
    parameters=[
        OpenApiParameter("category", str, description="Category path; the subtree is included."),
        OpenApiParameter("active", bool, description="Only active (true) or inactive (false) products."),
        OpenApiParameter("in_stock", bool),
    ],
    responses={200: ProductSerializer(many=True), **ERRORS},
)
class ProductListView(ProductQuerysetMixin, generics.ListAPIView):
    """List the store's products (paginated with ``limit``/``offset``)."""

    serializer_class = ProductSerializer

    def get_queryset(self) -> QuerySet[Product]:
        qs = super().get_queryset()
        params = self.request.query_params
        if category := params.get("category"):
            path = CATEGORY_PATH_SEPARATOR.join(p.strip() for p in category.split(">"))
            qs = qs.filter(Q(category__path=path) | Q(category__path__startswith=path + CATEGORY_PATH_SEPARATOR))
        for param, field in (("active", "is_active"), ("in_stock", "in_stock")):
            if (raw := params.get(param)) is not None:
                qs = qs.filter(**{field: raw.lower() in ("1", "true", "yes")})
        return qs


class ProductDetailView(ProductQuerysetMixin, APIView):
    """One product by sku: read, create-or-replace, deactivate."""

    @extend_schema(tags=TAG, responses={200: ProductSerializer, 404: ErrorSerializer, **ERRORS})
    def get(self, request: Request, sku: str) -> Response:
        product = self.get_queryset().filter(sku=sku).first()
        if product is None:
            return not_found("product", sku)
        return Response(ProductSerializer(product).data)

    @extend_schema(
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
