"""Activity REST API v1: event ingestion and customers. Thin views over ``services``."""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from shop_recs.activity import erasure
from shop_recs.activity.filters import CustomerEventFilter
from shop_recs.activity.models import Customer, ErasureRecord, Event
from shop_recs.activity.serializers import (
    CustomerBulkRowSerializer,
    CustomerInputSerializer,
    CustomerSerializer,
    CustomerUpsertResultSerializer,
    EventInputSerializer,
    IngestResultSerializer,
)
from shop_recs.activity.services import (
    InvalidRows,
    ingest_events,
    lean_event_possible,
    record_event_batch,
    record_one_event,
    upsert_customers,
)
from shop_recs.api.auth import StoreClient
from shop_recs.api.errors import error_response, invalid_rows_response, not_found
from shop_recs.api.fastpath import NOT_PARSED, FastPostMixin, json_body, json_response
from shop_recs.api.filters import filter_or_400, filterset_parameters
from shop_recs.api.idempotency import IDEMPOTENCY_HEADER, IDEMPOTENCY_PARAM, MAX_KEY_LENGTH, run_idempotent
from shop_recs.api.openapi import examples
from shop_recs.api.params import BadInput, bad_input_response, int_param, with_value
from shop_recs.api.scope import StoreScopedAPIMixin
from shop_recs.catalog.api_views import ERRORS
from shop_recs.catalog.serializers import ErrorSerializer
from shop_recs.stores.models import Store

EVENT_TAG = ["events"]
CUSTOMER_TAG = ["customers"]

ERASURE_RESULT = inline_serializer(
    "ErasureResult",
    fields={
        "record": serializers.IntegerField(help_text="The audit record's id (ErasureRecord): keep it as proof."),
        "rows": serializers.DictField(
            child=serializers.IntegerField(), help_text="Rows deleted (merge: moved) per table, zeros included."
        ),
    },
)
MERGE_RESULT = inline_serializer(
    "MergeResult",
    fields={
        "record": serializers.IntegerField(
            allow_null=True, help_text="The audit record's id; null when there was nothing to fold in."
        ),
        "merged": serializers.BooleanField(help_text="False when there was nothing left to fold in."),
        "rows": serializers.DictField(child=serializers.IntegerField()),
    },
)
MERGE_INPUT = inline_serializer(
    "MergeInput",
    fields={
        "from": serializers.CharField(
            max_length=100, help_text="An anonymous session id, or the external id of a duplicate customer."
        )
    },
)
EVENT_ROW = inline_serializer(
    "CustomerEvent",
    fields={
        "id": serializers.IntegerField(),
        "type": serializers.CharField(),
        "sku": serializers.CharField(allow_null=True),
        "session_id": serializers.CharField(),
        "value": serializers.FloatField(allow_null=True, help_text="Null also when the stored value is not finite."),
        "quantity": serializers.IntegerField(allow_null=True),
        "order_id": serializers.CharField(),
        "query": serializers.CharField(),
        "timestamp": serializers.DateTimeField(
            allow_null=True, help_text="Null when the stored time cannot be read (see stored_timestamp)."
        ),
        "readable": serializers.BooleanField(
            help_text="False for a row the validation refuses today (stored before it): the pages skip it."
        ),
        "stored_timestamp": serializers.CharField(help_text="The time as the database prints it."),
    },
    many=True,
)
EVENT_LIST_MAX = 1000
#: While the database is unreachable an event cannot be stored: 503 (``shop_recs.api.errors``), so the
#: client retries; an event is acknowledged (201) only once its transaction has committed.
DATABASE_UNAVAILABLE = OpenApiResponse(
    ErrorSerializer,
    description="`database_unavailable`: the database cannot be reached; nothing was written. Retry after "
    "the `Retry-After` seconds, with the same Idempotency-Key.",
)


#: The lean path's answer and what it stores with an Idempotency-Key (the same JSON as DRF's).
_ONE_ACCEPTED = {"accepted": 1}
_ONE_ACCEPTED_JSON = '{"accepted": 1}'


class EventView(FastPostMixin, StoreScopedAPIMixin, APIView):
    @staticmethod
    def fast_post(request: HttpRequest, store: Store) -> HttpResponse | None:
        """The lean path (``FastPostMixin``): no DRF, validation compiled once, one statement and its
        commit (PostgreSQL). ``None`` hands the request to :meth:`post` from the start: any refusal, a
        replayed or reused Idempotency-Key, and anything the lean path does not handle."""
        if not lean_event_possible():
            return None
        data = json_body(request)
        if data is NOT_PARSED:
            return None
        key = _idempotency_key(request)
        if key == "":
            return None
        idempotency = None
        if key is not None:
            idempotency = ("events", key, hashlib.sha256(request.body).hexdigest(), 201, _ONE_ACCEPTED_JSON)
        try:
            stored = record_one_event(store, data, idempotency)
        except IntegrityError:
            return None  # the key was used before: the full path replays its answer (or refuses another body)
        if not stored:
            return None
        return json_response(_ONE_ACCEPTED, status=201, allow="POST, OPTIONS")

    @extend_schema(
        operation_id="recordEvent",
        examples=examples("recordEvent"),
        tags=EVENT_TAG,
        summary="Record one event",
        parameters=[IDEMPOTENCY_PARAM],
        request=EventInputSerializer,
        responses={201: IngestResultSerializer, 422: ErrorSerializer, 503: DATABASE_UNAVAILABLE, **ERRORS},
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


def _idempotency_key(request: HttpRequest) -> str | None:
    """The request's Idempotency-Key, stripped; ``""`` for one the full path must refuse."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    key = key.strip()
    return key if key and len(key) <= MAX_KEY_LENGTH else ""


@contextmanager
def _gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a batch is parsed, checked and written.

    A 10,000-row batch allocates ~30,000 container objects (the parsed dicts, the clean and COPY
    tuples) that all stay alive until the answer: the collector ran ~43 young and ~4 middle-generation
    passes per batch, each walking them again — 17 ms of a batch's ~62 ms of Python CPU (measured with
    ``gc.callbacks``). None of them is part of a cycle (reference counting frees them all when the
    request ends), so pausing loses nothing; the next allocation after it resumes collects as usual.
    Process-wide, so with threaded workers another request's cycles wait too, for this one batch.
    """
    if not gc.isenabled():  # already paused (another thread's batch, or the embedding program)
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class EventBatchView(FastPostMixin, StoreScopedAPIMixin, APIView):
    @staticmethod
    def fast_post(request: HttpRequest, store: Store) -> HttpResponse | None:
        """The lean path: the body parsed with orjson, no DRF request or renderer, then the same
        ``ingest_events`` and idempotency record in one transaction (``record_event_batch``), with
        the cyclic garbage collector paused (:func:`_gc_paused`). ``None`` hands the request to
        :meth:`post`: an invalid batch, a repeated key, anything unusual."""
        with _gc_paused():
            return EventBatchView._fast_post(request, store)

    @staticmethod
    def _fast_post(request: HttpRequest, store: Store) -> HttpResponse | None:
        data = json_body(request)
        if data is NOT_PARSED:
            return None
        key = _idempotency_key(request)
        if key == "":
            return None
        idempotency = None if key is None else ("events.batch", key, hashlib.sha256(request.body).hexdigest())
        try:
            accepted = record_event_batch(store, data, idempotency)
        except IntegrityError:
            return None  # the key was used before: the full path replays its answer (or refuses another body)
        if accepted is None:
            return None
        return json_response({"accepted": accepted}, status=201, allow="POST, OPTIONS")

    @extend_schema(
        operation_id="recordEventBatch",
        examples=examples("recordEventBatch"),
        tags=EVENT_TAG,
        summary="Record a batch of events",
        description="A JSON list of at most EVENT_BATCH_MAX (10,000) events, validated as a whole: if any row "
        "is invalid the 400 `invalid_rows` answer lists every bad row by index, field and reason (unknown skus "
        "included) and nothing is written. Unknown customers are created when the batch is valid.",
        parameters=[IDEMPOTENCY_PARAM],
        request=EventInputSerializer(many=True),
        responses={201: IngestResultSerializer, 422: ErrorSerializer, 503: DATABASE_UNAVAILABLE, **ERRORS},
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
    @extend_schema(
        operation_id="getCustomer",
        examples=examples("getCustomer"),
        tags=CUSTOMER_TAG,
        responses={200: CustomerSerializer, 404: ErrorSerializer, **ERRORS},
    )
    def get(self, request: Request, external_id: str) -> Response:
        customer = Customer.objects.filter(external_id=external_id).first()
        if customer is None:
            return not_found("customer", external_id)
        return Response(CustomerSerializer(customer).data)

    @extend_schema(
        operation_id="eraseCustomer",
        examples=examples("eraseCustomer"),
        tags=CUSTOMER_TAG,
        summary="Erase a customer",
        description="Deletes the customer and every row about them: events (and the anonymous events of their "
        "sessions), profile and segment memberships, served lists and experiment assignments, search log, ad "
        "impressions and clicks, frequency counters and attributions, in one transaction, and drops the cached "
        "activity and precomputed candidates at once. The answer names the audit record (which holds no "
        "personal data) and the rows deleted per table. A retry answers 404: the customer is gone. What stays "
        "(published aggregates) is listed in docs/privacy.md.",
        responses={200: ERASURE_RESULT, 404: ErrorSerializer, **ERRORS},
    )
    def delete(self, request: Request, external_id: str) -> Response:
        customer = Customer.objects.filter(external_id=external_id).first()
        if customer is None:
            return not_found("customer", external_id)
        record = erasure.erase_customer(self.store, customer, _actor(request))
        return Response(_result(record))

    @extend_schema(
        operation_id="putCustomer",
        examples=examples("putCustomer"),
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
        operation_id="bulkUpsertCustomers",
        examples=examples("bulkUpsertCustomers"),
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


# --- erasure: events and merge ------------------------------------------------------------------


def _actor(request: Request) -> erasure.Actor:
    client = request.user
    key_id = client.api_key.pk if isinstance(client, StoreClient) else None
    return erasure.Actor(via=ErasureRecord.Via.API, api_key_id=key_id)


def _result(record: ErasureRecord) -> dict:
    return {"record": record.pk, "rows": record.row_counts}


def _erase_error(exc: erasure.EraseError) -> Response:
    status = 404 if exc.code == "not_found" else 400
    return error_response(exc.code, exc.message, http_status=status)


def _event_ids(raw: str | None) -> list[int]:
    """``?ids=1,2,3``: ASCII integers separated by commas (spaces allowed)."""
    parts = [p.strip() for p in (raw or "").split(",") if p.strip()]
    if not parts:
        raise BadInput("ids", "name at least one event id, e.g. ids=12,15")
    if len(parts) > erasure.MAX_EVENT_IDS:
        raise BadInput("ids", f"at most {erasure.MAX_EVENT_IDS} ids")
    if not all(p.isascii() and p.isdigit() and len(p) <= 18 for p in parts):
        raise BadInput("ids", "must be event ids (integers) separated by commas")
    return [int(p) for p in parts]


class CustomerEventsView(StoreScopedAPIMixin, APIView):
    @extend_schema(
        operation_id="listCustomerEvents",
        examples=examples("listCustomerEvents"),
        tags=CUSTOMER_TAG,
        summary="A customer's events, newest first",
        description="To find bad events to delete, including rows stored before today's validation that every "
        "other page skips (`readable: false`). Page with `before` (the smallest id of the previous page). A value "
        "a filter cannot read is a 400 `invalid_input` naming the parameter and the value.",
        parameters=[
            OpenApiParameter("limit", int, description=f"How many (1..{EVENT_LIST_MAX}, default 100; more is a 400)."),
            *filterset_parameters(CustomerEventFilter),
        ],
        responses={200: EVENT_ROW, 404: ErrorSerializer, **ERRORS},
    )
    def get(self, request: Request, external_id: str) -> Response:
        customer = Customer.objects.filter(external_id=external_id).first()
        if customer is None:
            return not_found("customer", external_id)
        try:
            limit = int_param(request.query_params, "limit", 100, 1, EVENT_LIST_MAX)
        except BadInput as exc:
            return bad_input_response(with_value(exc, request.query_params))
        events = filter_or_400(CustomerEventFilter(request.query_params, queryset=Event.objects.all()))
        rows = [
            {
                "id": e.pk,
                "type": e.event_type,
                "sku": e.sku,
                "session_id": e.session_id,
                "value": e.value,
                "quantity": e.quantity,
                "order_id": e.order_id,
                "query": e.query,
                "timestamp": e.timestamp,
                "readable": e.readable,
                "stored_timestamp": e.timestamp_text,
            }
            for e in erasure.list_events(customer, events=events, limit=limit)
        ]
        return Response(rows)

    @extend_schema(
        operation_id="deleteCustomerEvents",
        examples=examples("deleteCustomerEvents"),
        tags=CUSTOMER_TAG,
        summary="Delete some of a customer's events",
        description="Deletes bad events by id (`?ids=12,15`, at most 1,000), with the attributions derived from "
        "them; the customer's profile is recomputed by the next profile refresh. All ids must be this customer's "
        "events, or nothing is deleted (404 naming the others). Recorded like an erasure.",
        parameters=[
            OpenApiParameter("ids", OpenApiTypes.STR, required=True, description="Event ids, comma-separated.")
        ],
        responses={200: ERASURE_RESULT, 404: ErrorSerializer, **ERRORS},
    )
    def delete(self, request: Request, external_id: str) -> Response:
        customer = Customer.objects.filter(external_id=external_id).first()
        if customer is None:
            return not_found("customer", external_id)
        try:
            ids = _event_ids(request.query_params.get("ids"))
        except BadInput as exc:
            return bad_input_response(exc)
        try:
            record = erasure.delete_events(self.store, customer, ids, _actor(request))
        except erasure.EraseError as exc:
            return _erase_error(exc)
        return Response(_result(record))


class CustomerMergeView(StoreScopedAPIMixin, APIView):
    @extend_schema(
        operation_id="mergeCustomers",
        examples=examples("mergeCustomers"),
        tags=CUSTOMER_TAG,
        summary="Merge a session or a duplicate customer into this customer",
        description="Like Recombee's MergeUsers: the events of the anonymous session `from`, and of the customer "
        "whose external id is `from` (which is then deleted, its blank demographics filling this customer's), with "
        "their served lists, search log, ad impressions and attributions, become this customer's. The next "
        "recommendations use them at once. Idempotent: a second call finds nothing left and changes nothing "
        "(`merged: false`); with an Idempotency-Key a retry replays the first answer.",
        parameters=[IDEMPOTENCY_PARAM],
        request=MERGE_INPUT,
        responses={200: MERGE_RESULT, 404: ErrorSerializer, 422: ErrorSerializer, **ERRORS},
    )
    def post(self, request: Request, external_id: str) -> Response:
        # The customer is part of the key's scope: the same key and body for two customers are two requests.
        # Only a hash of the id is stored with the key, and an erasure deletes it (docs/privacy.md).
        endpoint = erasure.merge_endpoint(external_id)

        def action() -> Response:
            data = request.data
            source = data.get("from") if isinstance(data, dict) else None
            if not isinstance(source, str) or not source.strip() or len(source) > 100:
                return error_response(
                    "invalid_input",
                    'Expected {"from": "<session id or customer id>"} (1 to 100 characters).',
                    [{"field": "from", "reason": "must be a non-empty string of at most 100 characters"}],
                )
            customer = Customer.objects.filter(external_id=external_id).first()
            if customer is None:
                return not_found("customer", external_id)
            try:
                result = erasure.merge_customers(self.store, customer, source, _actor(request))
            except erasure.EraseError as exc:
                return _erase_error(exc)
            record = result.record.pk if result.record is not None else None
            return Response({"record": record, "merged": result.merged, "rows": result.counts})

        return run_idempotent(request, self.store, endpoint, action)
