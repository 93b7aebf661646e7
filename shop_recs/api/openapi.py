"""OpenAPI documentation shared by the API views: the examples of every operation, by operation id.

Each view's ``@extend_schema`` names its ``operation_id`` explicitly (camelCase, stable: client
generators turn it into method names, so renaming a URL must not rename a client's method) and takes
its examples from :func:`examples`. ``tests/api/test_openapi_docs.py`` fails on an operation without an
explicit id or without examples, so a new endpoint cannot ship undocumented.

Only data lives here (no app imports): the values are what the endpoints take and answer.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample

_LIST_ID = "3f0c2a4e-8d1b-4c51-9a57-0b6f1f1f8a21"
_TS = "2025-03-01T12:00:00Z"
_PRODUCT = {
    "sku": "MUG-1",
    "title": "Blue mug",
    "description": "Stoneware, 350 ml.",
    "category": "Home > Kitchen > Mugs",
    "brand": "Northwind",
    "tags": ["blue"],
    "price": "12.50",
    "currency": "EUR",
    "image_url": "https://cdn.example.com/mug.jpg",
    "url": "https://shop.example.com/products/blue-mug",
    "is_active": True,
    "in_stock": True,
    "attributes": {"volume_ml": 350},
    "created_at": "2025-03-01T09:00:00Z",
    "updated_at": "2025-03-01T09:00:00Z",
}
_PRODUCT_INPUT = {k: v for k, v in _PRODUCT.items() if k not in {"sku", "created_at", "updated_at"}}
_CUSTOMER = {
    "external_id": "c-42",
    "country": "DE",
    "age_band": "25-34",
    "gender": "",
    "signup_date": "2024-05-31",
    "created_at": "2025-03-01T09:00:00Z",
}


def _card(sku: str, title: str, price: str | None, slug: str, *, image: bool = True) -> dict[str, Any]:
    """The card fields every served item carries (``serving.snapshot.CARD_FIELDS``)."""
    return {
        "sku": sku,
        "title": title,
        "price": price,
        "currency": "EUR",
        "in_stock": True,
        "image_url": f"https://cdn.example.com/{slug}.jpg" if image else None,
        "url": f"https://shop.example.com/products/{slug}",
    }


def _recs(algorithm: str, placement: str, reason: dict[str, Any]) -> dict[str, Any]:
    return {
        "list_id": _LIST_ID,
        "model_version": 7,
        "algorithm": algorithm,
        "placement": placement,
        # The store has this placement; an unknown one would say "default" (its rules served).
        "rules_placement": placement,
        "items": [
            {**_card("MUG-2", "Red mug", "11.00", "red-mug"), "score": 0.91, "reason": reason},
            {
                **_card("TEA-9", "Green tea", "6.50", "green-tea", image=False),
                "score": 0.74,
                "reason": {"code": "popular", "text": "Popular", "anchor_sku": None},
            },
        ],
    }


_VIEWED = {"code": "because_viewed", "text": "Because you viewed Blue mug", "anchor_sku": "MUG-1"}
_ERASED = {"record": 18, "rows": {"activity.Event": 12, "activity.Customer": 1}}

#: operation id -> (request body example or None, response example, response status).
_EXAMPLES: dict[str, tuple[Any, Any, int]] = {
    # serving (storefront: publishable keys too)
    "getCustomerRecommendations": (None, _recs("item_knn", "home", _VIEWED), 200),
    "getSessionRecommendations": (
        {"viewed": ["MUG-1", "TEA-9"], "n": 10, "placement": "pdp"},
        _recs("item_knn", "pdp", _VIEWED),
        200,
    ),
    "getSimilarProducts": (
        None,
        _recs("item_knn", "pdp", {"code": "content_similar", "text": "Similar to Blue mug", "anchor_sku": "MUG-1"}),
        200,
    ),
    "getFrequentlyBoughtTogether": (
        None,
        _recs(
            "fbt",
            "cart",
            {"code": "frequently_bought_together", "text": "Often bought with Blue mug", "anchor_sku": "MUG-1"},
        ),
        200,
    ),
    "getPopularProducts": (
        None,
        _recs("popular", "home", {"code": "popular", "text": "Popular", "anchor_sku": None}),
        200,
    ),
    "getTrendingProducts": (
        None,
        _recs("trending", "home", {"code": "trending", "text": "Trending now", "anchor_sku": None}),
        200,
    ),
    "searchProducts": (
        None,
        {
            "query": "hedphones",
            "corrected_query": "headphones",
            "did_you_mean": None,
            "total": 1,
            "n": 20,
            "offset": 0,
            "personalized": False,
            "list_id": _LIST_ID,
            "items": [
                {
                    **_card("S-HP", "Sony headphones", "99.00", "sony-headphones"),
                    "score": 1.0,
                    "text_score": 1.0,
                    "personal_score": None,
                }
            ],
        },
        200,
    ),
    "getAds": (
        None,
        {
            "slot": "home_banner",
            "customer_known": True,
            "ads": [
                {
                    "impression_id": "9b2f6c1e-2a44-4f0e-8a43-5d1c7e0b9f10",
                    "campaign_id": 3,
                    "title": "Spring mugs -20%",
                    "image_url": "https://cdn.example.com/spring.jpg",
                    "landing_url": "https://shop.example.com/spring",
                    "score": 0.82,
                    "products": [
                        {
                            "sku": "MUG-1",
                            "title": "Blue mug",
                            "image_url": "https://cdn.example.com/mug-1.jpg",
                            "url": "https://shop.example.com/p/mug-1",
                            "price": "12.50",
                            "currency": "EUR",
                            "in_stock": True,
                        }
                    ],
                }
            ],
        },
        200,
    ),
    "recordAdClick": (None, {"impression_id": "9b2f6c1e-2a44-4f0e-8a43-5d1c7e0b9f10", "counted": True}, 200),
    "recordEvent": (
        {
            "customer": "c-42",
            "type": "click",
            "sku": "MUG-2",
            "timestamp": _TS,
            "context": {"list_id": _LIST_ID, "placement": "home"},
        },
        {"accepted": 1},
        201,
    ),
    # server-side (secret keys only)
    "recordEventBatch": (
        [
            {"session_id": "s-9", "type": "search", "query": "blue mug", "timestamp": _TS},
            {"customer": "c-42", "type": "add_to_cart", "sku": "MUG-1", "quantity": 2, "timestamp": _TS},
            {
                "customer": "c-42",
                "type": "purchase",
                "sku": "MUG-1",
                "order_id": "o-1001",
                "value": 12.5,
                "quantity": 2,
                "timestamp": _TS,
            },
        ],
        {"accepted": 3},
        201,
    ),
    "listProducts": (None, _PRODUCT, 200),
    "getProduct": (None, _PRODUCT, 200),
    "putProduct": (_PRODUCT_INPUT, _PRODUCT, 200),
    "deleteProduct": (None, {**_PRODUCT, "is_active": False}, 200),
    "deactivateProduct": (None, {**_PRODUCT, "is_active": False}, 200),
    "bulkUpsertProducts": (
        [{"sku": "MUG-1", "title": "Blue mug"}, {"sku": "MUG-2", "title": "Red mug", "price": 11}],
        {"created": 1, "updated": 1, "count": 2},
        200,
    ),
    "getCustomer": (None, _CUSTOMER, 200),
    "putCustomer": (
        {"country": "DE", "age_band": "25-34", "signup_date": "2024-05-31"},
        _CUSTOMER,
        200,
    ),
    "eraseCustomer": (None, _ERASED, 200),
    "bulkUpsertCustomers": (
        [{"external_id": "c-42", "country": "DE"}, {"external_id": "c-43", "country": "FR"}],
        {"created": 1, "updated": 1},
        200,
    ),
    "listCustomerEvents": (
        None,
        {
            "id": 981,
            "type": "view",
            "sku": "MUG-1",
            "session_id": "",
            "value": None,
            "quantity": None,
            "order_id": "",
            "query": "",
            "timestamp": _TS,
            "readable": True,
            "stored_timestamp": "2025-03-01 12:00:00+00",
        },
        200,
    ),
    "deleteCustomerEvents": (None, {"record": 19, "rows": {"activity.Event": 2, "analytics.Attribution": 1}}, 200),
    "mergeCustomers": (
        {"from": "sess-8f3a"},
        {"record": 20, "merged": True, "rows": {"activity.Event": 5, "serving.RecommendationList": 2}},
        200,
    ),
}


def examples(operation_id: str) -> list[OpenApiExample]:
    """The request (when the operation takes a body) and response examples of one operation."""
    request, response, status = _EXAMPLES[operation_id]
    out = []
    if request is not None:
        out.append(OpenApiExample("Request", value=request, request_only=True))
    out.append(OpenApiExample("Response", value=response, response_only=True, status_codes=[str(status)]))
    return out


def documented_operations() -> frozenset[str]:
    """Every operation id that has examples here."""
    return frozenset(_EXAMPLES)
