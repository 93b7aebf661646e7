"""Activity REST API v1: event ingestion and customers. Thin views over ``services``."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from shop_recs.activity.models import Customer
from shop_recs.activity.serializers import (
    CustomerBulkRowSerializer,
    CustomerInputSerializer,
    CustomerSerializer,
    CustomerUpsertResultSerializer,
    EventInputSerializer,
    IngestResultSerializer,
)
from shop_recs.activity.services import InvalidRows, ingest_events, upsert_customers
from shop_recs.api.errors import error_response, invalid_rows_response, not_found
from shop_recs.api.idempotency import IDEMPOTENCY_PARAM, run_idempotent
from shop_recs.api.scope import StoreScopedAPIMixin
from shop_recs.catalog.api_views import ERRORS
from shop_recs.catalog.serializers import ErrorSerializer

EVENT_TAG = ["events"]
CUSTOMER_TAG = ["customers"]


class EventView(StoreScopedAPIMixin, APIView):
    @extend_schema(
        tags=EVENT_TAG,
        summary="Record one event",
        parameters=[IDEMPOTENCY_PARAM],
        request=EventInputSerializer,
        responses={201: IngestResultSerializer, 422: ErrorSerializer, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        def action() -> Response:
            data = request.data
            if not isinstance(data, dict):
                return error_response("invalid_body", "Expected a JSON object (one event).")
            try:
                result = ingest_events(self.store, [data])
            except InvalidRows as exc:
                return invalid_rows_response(exc, single=True)
            return Response({"accepted": result.accepted}, status=201)

        return run_idempotent(request, self.store, "events", action)


class EventBatchView(StoreScopedAPIMixin, APIView):
    @extend_schema(
        tags=EVENT_TAG,
        summary="Record a batch of events",
        description="A JSON list of at most EVENT_BATCH_MAX (10,000) events, validated as a whole: if any row "
        "is invalid the 400 `invalid_rows` answer lists every bad row by index, field and reason (unknown skus "
        "included) and nothing is written. Unknown customers are created when the batch is valid.",
        parameters=[IDEMPOTENCY_PARAM],
        request=EventInputSerializer(many=True),
        responses={201: IngestResultSerializer, 422: ErrorSerializer, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        def action() -> Response:
            try:
                result = ingest_events(self.store, request.data, max_rows=settings.EVENT_BATCH_MAX)
            except InvalidRows as exc:
                return invalid_rows_response(exc)
            return Response({"accepted": result.accepted}, status=201)

        return run_idempotent(request, self.store, "events.batch", action)


class CustomerDetailView(StoreScopedAPIMixin, APIView):
    @extend_schema(tags=CUSTOMER_TAG, responses={200: CustomerSerializer, 404: ErrorSerializer, **ERRORS})
    def get(self, request: Request, external_id: str) -> Response:
        customer = Customer.objects.filter(external_id=external_id).first()
        if customer is None:
            return not_found("customer", external_id)
        return Response(CustomerSerializer(customer).data)

    @extend_schema(
        tags=CUSTOMER_TAG,
        summary="Create or replace a customer",
        request=CustomerInputSerializer,
        responses={200: CustomerSerializer, 201: CustomerSerializer, **ERRORS},
    )
    def put(self, request: Request, external_id: str) -> Response:
        data = request.data
        if not isinstance(data, dict):
            return error_response("invalid_body", "Expected a JSON object.")
        if data.get("external_id", external_id) != external_id:
            return error_response(
                "invalid_input",
                "The external_id in the body differs from the URL.",
                [{"field": "external_id", "reason": "mismatch"}],
            )
        try:
            result = upsert_customers(self.store, [{**data, "external_id": external_id}])
        except InvalidRows as exc:
            return invalid_rows_response(exc, single=True)
        customer = Customer.objects.get(external_id=external_id)
        return Response(CustomerSerializer(customer).data, status=201 if result.created else 200)


class CustomerBulkView(StoreScopedAPIMixin, APIView):
    @extend_schema(
        tags=CUSTOMER_TAG,
        summary="Create or replace many customers",
        description="A JSON list of customers (at most PRODUCT_BATCH_MAX), validated as a whole like product bulk.",
        request=CustomerBulkRowSerializer(many=True),
        responses={200: CustomerUpsertResultSerializer, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        try:
            result = upsert_customers(self.store, request.data, max_rows=settings.PRODUCT_BATCH_MAX)
        except InvalidRows as exc:
            return invalid_rows_response(exc)
        return Response({"created": result.created, "updated": result.updated})
