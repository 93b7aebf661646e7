"""GET /api/v1/search: relevance, personal re-ranking, filters, pagination, rules, errors, isolation."""

from __future__ import annotations

import pytest

from shop_recs.search.models import SearchQuery
from shop_recs.stores.scoping import store_scope, unscoped

URL = "/api/v1/search"


def _skus(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["sku"] for item in response.json()["items"]]


def test_relevance_order_and_item_shape(api_client, catalog):
    response = api_client.get(URL, {"q": "headphones"})
    assert _skus(response) == ["S-HP", "B-HP"]
    body = response.json()
    assert body["total"] == 2 and body["corrected_query"] is None and body["personalized"] is False
    first = body["items"][0]
    card = {"sku", "title", "price", "currency", "in_stock", "image_url", "url"}  # issue #14: as recommendations
    assert set(first) == card | {"score", "text_score", "personal_score"}
    assert first["title"] == "Sony headphones" and first["price"] == "99.00"
    assert first["text_score"] == 1.0 and first["personal_score"] is None
    assert body["items"][1]["text_score"] < 1.0


def test_typo_accent_prefix_and_chinese(api_client, catalog):
    body = api_client.get(URL, {"q": "hedphones"}).json()
    assert body["corrected_query"] == "headphones" and {i["sku"] for i in body["items"]} == {"S-HP", "B-HP"}
    assert _skus(api_client.get(URL, {"q": "creme"})) == ["CAFE"]
    assert _skus(api_client.get(URL, {"q": "quietcomf"})) == ["B-HP"]
    assert _skus(api_client.get(URL, {"q": "耳机"})) == ["ZH"]


def test_personal_rerank_puts_the_customers_brand_first(api_client, catalog, bose_fan, settings):
    settings.SEARCH_PERSONAL_WEIGHT = 0.5
    anonymous = _skus(api_client.get(URL, {"q": "headphones"}))
    unknown = _skus(api_client.get(URL, {"q": "headphones", "customer": "nobody"}))
    response = api_client.get(URL, {"q": "headphones", "customer": "fan"})
    personal = _skus(response)
    assert anonymous == unknown == ["S-HP", "B-HP"]
    assert personal == ["B-HP", "S-HP"]
    body = response.json()
    assert body["personalized"] is True
    assert body["items"][0]["personal_score"] == 1.0 and body["items"][1]["personal_score"] == 0.0
    # Weight 0 is pure text again, even for the fan.
    settings.SEARCH_PERSONAL_WEIGHT = 0.0
    assert _skus(api_client.get(URL, {"q": "headphones", "customer": "fan"})) == ["S-HP", "B-HP"]


def test_filters(api_client, catalog):
    # equal text scores tie-break on product id, so the order is stable across pages
    assert _skus(api_client.get(URL, {"q": "bose", "max_price": "200"})) == ["B-SP", "B-EB"]
    assert _skus(api_client.get(URL, {"q": "bose", "min_price": "250"})) == ["B-HP"]
    assert set(_skus(api_client.get(URL, {"q": "sony", "category": "Electronics"}))) == {"S-HP"}
    assert _skus(api_client.get(URL, {"q": "cup", "category": "Home > Kitchen"})) == ["CAFE"]
    assert _skus(api_client.get(URL, {"q": "cup", "category": "Electronics"})) == []


def test_pagination(api_client, catalog):
    everything = _skus(api_client.get(URL, {"q": "bose", "n": 10}))
    assert len(everything) == 3
    pages = [_skus(api_client.get(URL, {"q": "bose", "n": 1, "offset": k})) for k in range(4)]
    assert pages == [[everything[0]], [everything[1]], [everything[2]], []]
    assert api_client.get(URL, {"q": "bose", "n": 1}).json()["total"] == 3


def test_store_rules_apply(api_client, store, catalog):
    from shop_recs.serving.models import StoreRules

    with store_scope(store):
        StoreRules.objects.create(
            store=store, blocked_product_ids=[catalog["S-HP"].pk], pinned_product_ids=[catalog["MUG"].pk]
        )
    # blocked is gone; a pinned product that does not match the query is not injected into search
    assert _skus(api_client.get(URL, {"q": "headphones"})) == ["B-HP"]
    with unscoped():
        catalog["B-SP"].in_stock = False
        catalog["B-SP"].save()
        catalog["B-EB"].is_active = False
        catalog["B-EB"].save()
    assert _skus(api_client.get(URL, {"q": "bose"})) == ["B-HP"]  # out of stock and inactive filtered


def test_purchased_products_stay_findable(api_client, catalog, bose_fan):
    # Recommendations hide what the fan bought; search must not (people re-buy what they search for).
    assert "B-SP" in _skus(api_client.get(URL, {"q": "speaker", "customer": "fan"}))


@pytest.mark.parametrize(
    "params, field",
    [
        ({}, "q"),
        ({"q": "   "}, "q"),
        ({"q": "x" * 201}, "q"),
        ({"q": "mug", "n": "ten"}, "n"),
        ({"q": "mug", "n": "0"}, "n"),
        ({"q": "mug", "n": "101"}, "n"),
        ({"q": "mug", "offset": "-1"}, "offset"),
        ({"q": "mug", "min_price": "cheap"}, "min_price"),
        ({"q": "mug", "max_price": "nan"}, "max_price"),
        ({"q": "mug", "min_price": "10", "max_price": "5"}, "min_price"),
    ],
)
def test_bad_input_is_a_400_with_the_error_shape(api_client, catalog, params, field):
    response = api_client.get(URL, params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_input" and error["details"][0]["field"] == field
    with unscoped():
        assert not SearchQuery.objects.exists()  # rejected queries are not logged


def test_requires_an_api_key(client, catalog):
    assert client.get(URL, {"q": "mug"}).status_code == 401


def test_other_store_key_never_finds_this_stores_products(api_client, other_api_client, catalog, other_store):
    assert _skus(other_api_client.get(URL, {"q": "headphones"})) == []
    assert _skus(other_api_client.get(URL, {"q": "hedphones"})) == []
    assert _skus(api_client.get(URL, {"q": "headphones"})) == ["S-HP", "B-HP"]
    with unscoped():
        assert SearchQuery.objects.filter(store=other_store).count() == 2


def test_index_is_rebuilt_after_a_product_upsert(api_client, store, catalog):
    assert _skus(api_client.get(URL, {"q": "lamp"})) == []
    response = api_client.post(
        "/api/v1/products/bulk", [{"sku": "LAMP", "title": "Reading lamp", "price": "25.00"}], format="json"
    )
    assert response.status_code in (200, 201), response.content
    assert _skus(api_client.get(URL, {"q": "lamp"})) == ["LAMP"]
    # A rename through the bulk path (no signals) is picked up by the fingerprint too.
    api_client.post("/api/v1/products/bulk", [{"sku": "LAMP", "title": "Desk light"}], format="json")
    assert _skus(api_client.get(URL, {"q": "lamp"})) == []
    assert _skus(api_client.get(URL, {"q": "desk light"})) == ["LAMP"]


def test_signal_drops_the_cached_index_at_once(api_client, store, catalog, settings):
    settings.SEARCH_INDEX_CHECK_SECONDS = 3600  # only the signal can invalidate now
    assert _skus(api_client.get(URL, {"q": "mug"})) == ["MUG"]
    with unscoped():
        catalog["MUG"].is_active = False
        catalog["MUG"].save()
    assert _skus(api_client.get(URL, {"q": "mug"})) == []


def test_served_page_is_logged_as_a_list_for_attribution(api_client, store, catalog, bose_fan):
    from shop_recs.serving.models import RecommendationList
    from shop_recs.training.models import ModelVersion

    body = api_client.get(URL, {"q": "bose", "n": 2, "customer": "fan"}).json()
    with store_scope(store):
        row = RecommendationList.objects.get(list_id=body["list_id"])
        active = ModelVersion.objects.get(is_active=True)
    assert row.endpoint == "search" and row.customer == bose_fan and row.model_version_id == active.pk
    skus = {p.pk: sku for sku, p in catalog.items()}
    assert [skus[pk] for pk in row.product_ids] == [item["sku"] for item in body["items"]]
    anonymous = api_client.get(URL, {"q": "bose"}).json()
    with store_scope(store):
        row = RecommendationList.objects.get(list_id=anonymous["list_id"])
    assert row.customer is None and row.model_version_id is None and row.algorithm == "bm25"


@pytest.mark.django_db(transaction=True)
def test_logs_commit_outside_a_transaction_on_postgres(store, make_product):
    """The log INSERTs' no-WAL-wait form (only used in autocommit) writes the same rows."""
    from django.db import connection

    from shop_recs.search.services import SearchOutcome, log_query, log_search_list
    from shop_recs.serving.models import RecommendationList
    from tests.conftest import require_postgres

    require_postgres()
    make_product(store, "LOG-1", title="Log test mug")
    assert connection.get_autocommit() and not connection.in_atomic_block
    outcome = SearchOutcome(query="mug", hits=[], total=0)
    log_query(store, "mug", outcome)
    list_id = log_search_list(store, outcome, customer_id=None, version=None)
    with unscoped():
        assert SearchQuery.objects.get(store=store).query == "mug"
        assert RecommendationList.objects.filter(list_id=list_id, endpoint="search").exists()
