"""Issue 12 §1 and §5: ordinary and hostile API input gets a 400 in the JSON error shape, never a 500.

Each test is one reproduction from the schemathesis run or the hand-made attack (a space after a
comma in ``exclude``, NUL bytes, lone surrogates, deep nesting, huge integers, schema drift), and
the §1 values that used to be accepted and then broke every reader (a year-1 timestamp, 1e300, a
customer id with ``/``).
"""

from __future__ import annotations

import json

import pytest

from shop_recs.activity.models import Customer, Event
from shop_recs.catalog.models import Product
from tests.api.helpers import TS, count, event

pytestmark = pytest.mark.django_db

LISTS = (
    "/api/v1/recommendations/customer/c1",
    "/api/v1/popular",
    "/api/v1/trending",
)


@pytest.fixture
def catalog(store, make_product):
    return [make_product(store, "DEMO-00001"), make_product(store, "DEMO-00002"), make_product(store, "DEMO-00003")]


def _error(response, status: int = 400) -> dict:
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) >= {"code", "message", "details"}
    return error


def _post_raw(api_client, path: str, text: str):
    return api_client.generic("POST", path, text.encode("utf-8", "surrogatepass"), content_type="application/json")


# --- exclude with spaces (KeyError on four endpoints) -------------------------------------------------


@pytest.mark.parametrize("path", LISTS)
def test_exclude_with_a_space_after_the_comma_is_trimmed(api_client, catalog, path):
    response = api_client.get(path, {"exclude": "DEMO-00001, DEMO-00002", "n": 10})
    assert response.status_code == 200, response.content[:300]
    skus = {item["sku"] for item in response.json()["items"]}
    assert not skus & {"DEMO-00001", "DEMO-00002"}


def test_session_exclude_with_spaces_is_trimmed(api_client, catalog):
    body = {"viewed": ["DEMO-00003"], "exclude": "DEMO-00001, DEMO-00002"}
    response = api_client.post("/api/v1/recommendations/session", body, format="json")
    assert response.status_code == 200, response.content[:300]
    assert not {i["sku"] for i in response.json()["items"]} & {"DEMO-00001", "DEMO-00002"}


def test_session_exclude_that_is_a_number_is_a_400(api_client, catalog):
    response = api_client.post("/api/v1/recommendations/session", {"viewed": [], "exclude": 5}, format="json")
    assert _error(response)["details"] == [{"field": "exclude", "reason": _error(response)["details"][0]["reason"]}]


@pytest.mark.parametrize("field", ["category", "placement"])
def test_session_text_fields_of_the_wrong_type_are_a_400(api_client, catalog, field):
    response = api_client.post("/api/v1/recommendations/session", {"viewed": [], field: {"x": 1}}, format="json")
    assert _error(response)["details"][0]["field"] == field


# --- NUL bytes, lone surrogates, nesting, huge numbers ------------------------------------------------


@pytest.mark.parametrize("path", [*LISTS, "/api/v1/search", "/api/v1/products", "/api/v1/ads"])
def test_nul_in_a_query_parameter_is_a_400(api_client, catalog, path):
    for name in ("category", "placement", "q", "exclude", "customer", "slot"):
        response = api_client.get(f"{path}?{name}=a%00b")
        assert _error(response)["code"] == "invalid_input"


def test_nul_in_the_path_is_a_400(api_client, catalog):
    assert _error(api_client.get("/api/v1/recommendations/customer/a%00b"))["code"] == "invalid_input"
    assert _error(api_client.get("/api/v1/products/DEMO%0000001/similar"))["code"] == "invalid_input"


VIEW = f'{{"customer": "c1", "type": "view", "sku": "DEMO-00001", "timestamp": "{TS}"}}'


@pytest.mark.parametrize(
    "body",
    [
        VIEW[:-1] + ', "context": {"a": "x\\u0000"}}',
        VIEW.replace('"c1"', '"c\\u0000"'),
        f'{{"customer": "c1", "type": "search", "query": "\\ud800", "timestamp": "{TS}"}}',
        VIEW[:-1] + ', "context": {"\\udfff": 1}}',
    ],
)
def test_nul_and_lone_surrogates_in_json_are_a_400(api_client, catalog, body):
    assert _error(_post_raw(api_client, "/api/v1/events", body))["code"] == "parse_error"
    assert count(Event) == 0


def test_an_emoji_surrogate_pair_is_fine(api_client, catalog):
    body = f'{{"customer": "c1", "type": "search", "query": "mug \\ud83d\\ude00", "timestamp": "{TS}"}}'
    assert _post_raw(api_client, "/api/v1/events", body).status_code == 201


def test_nul_in_product_attributes_is_a_400(api_client):
    response = api_client.put("/api/v1/products/P1", {"title": "Mug", "attributes": {"k": "v\x00"}}, format="json")
    assert _error(response)["code"] in {"parse_error", "invalid_input"}
    assert count(Product) == 0


@pytest.mark.parametrize("path", ["/api/v1/events", "/api/v1/events/batch", "/api/v1/recommendations/session"])
def test_deeply_nested_json_is_a_400(api_client, path):
    body = "[" * 100_000 + "]" * 100_000
    assert _error(_post_raw(api_client, path, body))["code"] == "parse_error"


def test_context_nested_deeper_than_the_limit_is_refused(api_client, catalog):
    context: dict = {}
    inner = context
    for _ in range(60):
        inner["a"] = {}
        inner = inner["a"]
    response = api_client.post("/api/v1/events", event(sku="DEMO-00001", context=context), format="json")
    assert _error(response)["details"][0]["field"] == "context"


def test_an_integer_over_4300_digits_is_a_400(api_client, catalog):
    body = '{{"customer": "c1", "type": "rating", "sku": "DEMO-00001", "value": {}, "timestamp": "{}"}}'.format(
        "9" * 5000,
        TS,
    )
    assert _error(_post_raw(api_client, "/api/v1/events", body))["code"] == "parse_error"


@pytest.mark.parametrize("query", ["limit=99999999999999999999", "offset=99999999999999999999", "limit=0", "limit=x"])
def test_pagination_out_of_range_is_a_400(api_client, catalog, query):
    error = _error(api_client.get(f"/api/v1/products?{query}"))
    assert error["code"] == "invalid_input"
    assert error["details"][0]["field"] == query.split("=")[0]


@pytest.mark.parametrize("value", ["", "99999999999999999999", "0", "101", "²", "1_0", "5.0"])
@pytest.mark.parametrize("path", LISTS)
def test_n_must_be_an_integer_in_range(api_client, catalog, path, value):
    error = _error(api_client.get(path, {"n": value}))
    assert error["details"] == [{"field": "n", "reason": error["details"][0]["reason"]}]


@pytest.mark.parametrize("value", ["", True, 5.5, "1e3"])
def test_session_n_must_be_an_integer(api_client, catalog, value):
    response = api_client.post("/api/v1/recommendations/session", {"viewed": [], "n": value}, format="json")
    assert _error(response)["details"][0]["field"] == "n"


# --- §1: values that used to be accepted and then broke every reader ----------------------------------


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"timestamp": "0001-01-01T00:00:00+14:00"}, "timestamp"),
        ({"timestamp": "1999-12-31T23:59:59Z"}, "timestamp"),
        ({"type": "purchase", "order_id": "o1", "value": 1e300, "quantity": 2147483647}, "value"),
        ({"type": "rating", "value": 1e308}, "value"),
        ({"customer": "a/b"}, "customer"),
        ({"customer": "a b"}, "customer"),
        ({"session_id": "s?1", "customer": None}, "session_id"),
        ({"type": "purchase", "order_id": "o#1", "value": 3}, "order_id"),
    ],
)
def test_events_outside_the_shared_rules_are_refused_with_row_and_field(api_client, catalog, row, field):
    response = api_client.post(
        "/api/v1/events/batch", [event(sku="DEMO-00001"), event(sku="DEMO-00001", **row)], format="json"
    )
    error = _error(response)
    assert error["code"] == "invalid_rows"
    assert {(d["index"], d["field"]) for d in error["details"]} == {(1, field)}
    assert count(Event) == 0


def test_the_timestamp_window_is_a_setting(api_client, catalog, settings):
    from datetime import date

    settings.EVENT_TIMESTAMP_MIN = date(2025, 6, 1)
    response = api_client.post(
        "/api/v1/events", event(sku="DEMO-00001", timestamp="2025-05-31T00:00:00Z"), format="json"
    )
    assert "2025-06-01" in _error(response)["details"][0]["reason"]


def test_customers_and_products_use_the_same_id_rule(api_client):
    response = api_client.post("/api/v1/customers/bulk", [{"external_id": "a b"}], format="json")
    assert _error(response)["details"][0]["field"] == "external_id"
    response = api_client.post("/api/v1/products/bulk", [{"sku": "a,b", "title": "T"}], format="json")
    assert _error(response)["details"][0]["field"] == "sku"
    assert count(Customer) == 0 and count(Product) == 0


# --- schema drift ------------------------------------------------------------------------------------


def test_blank_price_means_no_price(api_client):
    response = api_client.put("/api/v1/products/P1", {"title": "Mug", "price": ""}, format="json")
    assert response.status_code in (200, 201), response.content[:300]
    assert response.json()["price"] is None


def test_the_schema_documents_the_bounds_of_n(api_client):
    from django.test import Client

    schema = Client().get("/api/schema/", HTTP_ACCEPT="application/json").json()
    params = schema["paths"]["/api/v1/popular"]["get"]["parameters"]
    n = next(p for p in params if p["name"] == "n")
    assert n["schema"]["minimum"] == 1 and n["schema"]["maximum"] == 100


def test_the_schema_allows_a_product_without_an_image(api_client):
    from django.test import Client

    schema = Client().get("/api/schema/", HTTP_ACCEPT="application/json").json()
    for name in ("Product", "ProductInputRequest", "ProductBulkRowRequest"):
        image_url = schema["components"]["schemas"][name]["properties"]["image_url"]
        assert {"type": "string", "maxLength": 0} in image_url["oneOf"], name
    response = api_client.put("/api/v1/products/P1", {"title": "Mug"}, format="json")
    assert response.json()["image_url"] == ""


# --- every API error is the JSON error shape ----------------------------------------------------------


def test_unknown_api_path_is_a_json_404(api_client):
    assert _error(api_client.get("/api/v1/nope"), 404)["code"] == "not_found"


def test_wrong_method_is_a_json_405(api_client):
    response = api_client.delete("/api/v1/popular")
    assert _error(response, 405)["code"] == "method_not_allowed"


def test_a_view_error_carries_the_request_id(api_client):
    response = api_client.get("/api/v1/popular", {"n": "0"}, HTTP_X_REQUEST_ID="req-7")
    error = _error(response)
    assert error["code"] == "invalid_input"
    assert error["request_id"] == "req-7"


def test_wrong_media_type_is_a_json_415(api_client):
    response = api_client.generic("POST", "/api/v1/events", b"a=b", content_type="application/x-www-form-urlencoded")
    assert _error(response, 415)["code"] == "unsupported_media_type"


def test_request_too_large_is_a_json_413(api_client, settings):
    from django.core.exceptions import RequestDataTooBig
    from django.test import RequestFactory

    from shop_recs.api.errors import ApiErrorMiddleware

    request = RequestFactory().post("/api/v1/events", data=b"{}", content_type="application/json")
    middleware = ApiErrorMiddleware(lambda r: None)
    response = middleware.process_exception(request, RequestDataTooBig("too big"))
    assert response.status_code == 413
    assert json.loads(response.content)["error"]["code"] == "request_too_large"


def test_an_unhandled_error_is_a_json_500_with_the_request_id(api_client, catalog, monkeypatch):
    from shop_recs.serving import api_views

    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    # The failing dependency is the catalog snapshot, not the code under test (the middleware).
    monkeypatch.setattr(api_views, "catalog_snapshot", explode)
    response = api_client.get("/api/v1/popular", HTTP_X_REQUEST_ID="req-42")
    error = _error(response, 500)
    assert error["code"] == "server_error"
    assert error["request_id"] == "req-42"
    assert "boom" not in response.content.decode()


def test_an_unhandled_error_leaves_no_store_scope_behind(api_client, catalog, monkeypatch):
    """Regression: the JSON 500 path skipped ``finalize_response``, so the caller's store scope stayed
    active in the thread and the next unscoped query on it returned that store's rows."""
    from shop_recs.catalog.models import Product
    from shop_recs.serving import api_views
    from shop_recs.stores.scoping import ScopeError

    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(api_views, "catalog_snapshot", explode)
    assert api_client.get("/api/v1/popular").status_code == 500
    with pytest.raises(ScopeError):
        list(Product.objects.all())


# --- the seeder follows the same rules ----------------------------------------------------------------


def test_the_seeder_refuses_to_write_events_outside_the_window():
    from datetime import UTC, datetime

    import numpy as np

    from shop_recs.imports.demo import DemoConfig, _check_generated

    sessions = np.array(["demo-42-0000001"], dtype=object)
    orders = np.array(["D1"])
    ok = [datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 6, 1, tzinfo=UTC)]
    _check_generated(ok, sessions, orders, DemoConfig())
    with pytest.raises(ValueError, match="EVENT_TIMESTAMP_MIN"):
        _check_generated([datetime(1999, 1, 1, tzinfo=UTC), *ok], sessions, orders, DemoConfig())
    with pytest.raises(ValueError, match="id rule"):
        _check_generated(ok, np.array(["demo 42/1"], dtype=object), orders, DemoConfig())
