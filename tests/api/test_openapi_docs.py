"""Issue 16 §5: the OpenAPI schema documents both key kinds, names every operation explicitly and
gives every operation an example; the docs page carries copy-paste examples."""

from __future__ import annotations

import re

import pytest
from django.urls import resolve
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.openapi import AutoSchema
from rest_framework.test import APIClient

from shop_recs.api.auth import PUBLISHABLE_ROUTES
from shop_recs.api.openapi import _EXAMPLES, documented_operations
from shop_recs.stores.models import ApiKey, KeyKind

METHODS = {"get", "put", "post", "patch", "delete"}
CAMEL = re.compile(r"^[a-z]+(?:[A-Z][a-z]+)+$")
#: What drf-spectacular names an operation when the view does not: ``v1_products_retrieve``.
AUTO_NAME = re.compile(r"_(list|retrieve|create|update|partial_update|destroy)$")


def _operations(schema: dict) -> list[tuple[str, str, dict]]:
    return [
        (path, method, op) for path, ops in schema["paths"].items() for method, op in ops.items() if method in METHODS
    ]


@pytest.fixture(scope="module")
def generated(django_db_blocker):
    """The schema, plus every operation that fell back to drf-spectacular's automatic id."""
    auto: list[tuple[str, str]] = []
    original = AutoSchema.get_operation_id

    def spy(self):
        auto.append((self.method, self.path))
        return original(self)

    AutoSchema.get_operation_id = spy
    try:
        with django_db_blocker.unblock():
            schema = SchemaGenerator().get_schema(request=None, public=True)
    finally:
        AutoSchema.get_operation_id = original
    return schema, auto


def test_every_operation_has_an_explicit_operation_id(generated):
    schema, auto = generated
    operations = _operations(schema)
    assert len(operations) >= 24
    assert auto == [], f"operations without an explicit operation_id (extend_schema(operation_id=...)): {auto}"
    ids = [op["operationId"] for _, _, op in operations]
    assert len(ids) == len(set(ids)), "operation ids must be unique"
    bad = [i for i in ids if not CAMEL.match(i) or AUTO_NAME.search(i) or i.startswith("v1_")]
    assert bad == [], f"operation ids must be explicit camelCase names, not the automatic ones: {bad}"


def test_every_operation_has_examples(generated):
    schema, _ = generated
    missing = []
    for path, method, op in _operations(schema):
        body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
        if "requestBody" in op and not body.get("examples"):
            missing.append(f"{method.upper()} {path}: request")
        success = [r for code, r in op["responses"].items() if code.startswith("2")]
        if not any(r.get("content", {}).get("application/json", {}).get("examples") for r in success):
            missing.append(f"{method.upper()} {path}: response")
    assert missing == [], f"operations without examples (shop_recs.api.openapi): {missing}"


def test_no_stale_examples(generated):
    schema, _ = generated
    assert documented_operations() == {op["operationId"] for _, _, op in _operations(schema)}


def test_both_key_kinds_are_security_schemes(generated):
    schema, _ = generated
    schemes = schema["components"]["securitySchemes"]
    assert set(schemes) == {"SecretKey", "PublishableKey"}
    assert all(s["type"] == "http" and s["scheme"] == "bearer" for s in schemes.values())
    assert "sr_" in schemes["SecretKey"]["description"] and "pk_" in schemes["PublishableKey"]["description"]


def test_operation_security_follows_the_publishable_allow_list(generated):
    """The schema says which operations a publishable key may call, from the same allow-list the API checks."""
    schema, _ = generated
    storefront = set()
    for path, method, op in _operations(schema):
        name = resolve(re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000000", path)).url_name
        publishable = method.upper() in PUBLISHABLE_ROUTES.get(name, ())
        expected = [{"SecretKey": []}, {"PublishableKey": []}] if publishable else [{"SecretKey": []}]
        assert op["security"] == expected, (method, path)
        if publishable:
            storefront.add(op["operationId"])
    assert storefront == {
        "getCustomerRecommendations",
        "getSessionRecommendations",
        "getSimilarProducts",
        "getFrequentlyBoughtTogether",
        "getPopularProducts",
        "getTrendingProducts",
        "searchProducts",
        "getAds",
        "recordAdClick",
        "recordEvent",
    }


@pytest.mark.django_db
def test_docs_page_and_schema_carry_copy_paste_examples(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    description = schema["info"]["description"]
    assert "curl " in description and "fetch(" in description
    assert "pk_" in description and "sr_" in description and "key_not_allowed" in description
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    page = docs.content.decode()
    assert "/api/schema/" in page and "swagger-ui" in page.lower()


@pytest.mark.django_db
def test_storefront_examples_are_real_requests(store, make_product, make_customer):
    """The request examples of the storefront writes work as written with a publishable key, and the
    answers have the documented shape."""
    for sku in ("MUG-1", "MUG-2", "TEA-9"):
        make_product(store, sku)
    make_customer(store, "c-42")
    _, raw = ApiKey.generate(
        store, "storefront", kind=KeyKind.PUBLISHABLE, allowed_origins=["https://shop.example.com"]
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")

    request, response, status = _EXAMPLES["recordEvent"]
    answer = client.post("/api/v1/events", request, format="json", HTTP_ORIGIN="https://shop.example.com")
    assert answer.status_code == status and answer.json() == response

    request, response, status = _EXAMPLES["getSessionRecommendations"]
    answer = client.post("/api/v1/recommendations/session", request, format="json")
    assert answer.status_code == status and set(answer.json()) == set(response)

    _, response, status = _EXAMPLES["getCustomerRecommendations"]
    answer = client.get("/api/v1/recommendations/customer/c-42?n=8&placement=home")
    assert answer.status_code == status and set(answer.json()) == set(response)
