"""Serving endpoints: happy paths, bad input, isolation, rules, reasons, list log, real time, cold start."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shop_recs.serving.models import RecommendationList, StoreRules
from shop_recs.stores.scoping import unscoped

pytestmark = pytest.mark.django_db
API = "/api/v1"


def skus(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["sku"] for item in response.json()["items"]]


def set_rules(store, **fields):
    with unscoped():
        rules, _ = StoreRules.objects.get_or_create(store=store)
        for k, v in fields.items():
            setattr(rules, k, v)
        rules.save()


def test_customer_recs_happy_path_reasons_and_log(api_client, shop):
    r = api_client.get(f"{API}/recommendations/customer/C0?n=3&placement=home")
    body = r.json()
    assert r.status_code == 200
    assert body["placement"] == "home" and body["model_version"] is not None
    assert len(body["items"]) == 3
    first = body["items"][0]
    # The card fields (issue #14): price is a decimal string since then, no longer a number.
    assert set(first) == {"sku", "title", "price", "currency", "in_stock", "image_url", "url", "score", "reason"}
    assert first["price"] == "13.00" and first["currency"] == "USD"  # no product currency: the store's
    # C0 had M0 (bought), M1, M2: the remaining mug M3 ranks first, explained by a history item.
    assert first["sku"] == "M3"
    assert first["reason"]["code"] == "because_viewed"
    assert first["reason"]["anchor_sku"] in {"M0", "M1", "M2"}
    assert "Because you" in first["reason"]["text"]
    with unscoped():
        log = RecommendationList.objects.get(list_id=body["list_id"])
    assert log.placement == "home" and log.model_version_id == body["model_version"]
    assert log.customer_id == shop["customers"][0].pk
    assert log.product_ids == [shop["products"][i["sku"]].pk for i in body["items"]]


def test_customer_bad_input(api_client, shop):
    for query, field in [
        ("n=0", "n"),
        ("n=1000", "n"),
        ("n=x", "n"),
        ("min_price=abc", "min_price"),
        ("max_price=-1", "max_price"),
        ("diversity=2", "diversity"),
        ("offset=-1", "offset"),
    ]:
        r = api_client.get(f"{API}/recommendations/customer/C0?{query}")
        assert r.status_code == 400, query
        assert r.json()["error"]["details"][0]["field"] == field


def test_price_and_category_filters(api_client, shop):
    got = skus(api_client.get(f"{API}/recommendations/customer/C0?n=10&min_price=20"))
    assert got and all(s.startswith("S") for s in got)
    got = skus(api_client.get(f"{API}/recommendations/customer/C0?n=10&category=Clothes"))
    assert got and all(s.startswith("S") for s in got)
    got = skus(api_client.get(f"{API}/recommendations/customer/C0?n=10&exclude=M3,UNKNOWN"))
    assert "M3" not in got


def test_unknown_customer_gets_trending(api_client, shop):
    body = api_client.get(f"{API}/recommendations/customer/NEW?n=5").json()
    assert body["algorithm"] == "trending"
    assert {i["reason"]["code"] for i in body["items"]} == {"trending"}


def test_session_recs(api_client, shop):
    r = api_client.post(f"{API}/recommendations/session", {"viewed": ["S0", "S1"], "n": 3}, format="json")
    got = skus(r)
    assert got[0] in {"S2", "S3"} and "S0" not in got and "S1" not in got
    assert r.json()["items"][0]["reason"]["anchor_sku"] in {"S0", "S1"}
    assert api_client.post(f"{API}/recommendations/session", {"viewed": "S0"}, format="json").status_code == 400
    assert api_client.post(f"{API}/recommendations/session", {"viewed": [], "n": 0}, format="json").status_code == 400


def test_session_with_new_product_uses_content(api_client, shop):
    got = skus(api_client.post(f"{API}/recommendations/session", {"viewed": ["N0"], "n": 3}, format="json"))
    assert got and got[0].startswith("M")


def test_similar_items_and_new_product(api_client, shop):
    got = skus(api_client.get(f"{API}/products/M0/similar?n=3"))
    assert set(got) <= {"M1", "M2", "M3", "N0"} and len(got) == 3
    body = api_client.get(f"{API}/products/N0/similar?n=3").json()
    assert all(i["sku"].startswith("M") for i in body["items"])
    assert body["items"][0]["reason"]["code"] == "content_similar"
    assert body["items"][0]["reason"]["anchor_sku"] == "N0"
    # the new product appears among the neighbours of an old one
    assert "N0" in skus(api_client.get(f"{API}/products/M1/similar?n=10"))


def test_unknown_sku_404_and_bad_n(api_client, shop):
    for path in ("products/NOPE/similar", "products/NOPE/frequently-bought-together"):
        r = api_client.get(f"{API}/{path}")
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "not_found" and "NOPE" in r.json()["error"]["message"]
    assert api_client.get(f"{API}/products/M0/similar?n=0").status_code == 400
    assert api_client.get(f"{API}/popular?n=101").status_code == 400


def test_popular_and_trending(api_client, shop):
    got = skus(api_client.get(f"{API}/popular?n=20"))
    assert len(got) == 9
    got = skus(api_client.get(f"{API}/trending?n=3&category=Kitchen"))
    assert got and all(s.startswith(("M", "N")) for s in got)


def test_store_isolation(other_api_client, shop):
    assert other_api_client.get(f"{API}/products/M0/similar").status_code == 404
    body = other_api_client.get(f"{API}/recommendations/customer/C0").json()
    assert body["items"] == [] and body["model_version"] is None


def test_rules_inactive_out_of_stock_blocked(api_client, shop):
    p = shop["products"]
    with unscoped():
        p["M3"].is_active = False
        p["M3"].save()
        p["M2"].in_stock = False
        p["M2"].save()
    got = skus(api_client.get(f"{API}/products/M0/similar?n=10"))
    assert "M3" not in got and "M2" not in got
    set_rules(shop["products"]["M0"].store, blocked_product_ids=[p["M1"].pk])
    got = skus(api_client.get(f"{API}/products/M0/similar?n=10"))
    assert "M1" not in got


def test_rules_purchased_and_repurchasable(api_client, shop):
    store = shop["products"]["M0"].store
    got = skus(api_client.get(f"{API}/recommendations/customer/C0?n=10"))
    assert "M0" not in got  # C0 bought M0
    set_rules(store, repurchasable_category_ids=[shop["categories"]["mugs"].pk])
    got = skus(api_client.get(f"{API}/recommendations/customer/C0?n=10"))
    assert "M0" in got


def test_rules_pinned_and_boosted(api_client, shop):
    store, p = shop["products"]["M0"].store, shop["products"]
    base = skus(api_client.get(f"{API}/recommendations/customer/C0?n=10"))
    set_rules(store, pinned_product_ids=[p["S3"].pk])
    body = api_client.get(f"{API}/recommendations/customer/C0?n=10").json()
    assert body["items"][0]["sku"] == "S3" and body["items"][0]["reason"]["code"] == "pinned"
    set_rules(store, pinned_product_ids=[], boosted_product_ids=[base[-1] and p[base[-1]].pk], boost_weight=100.0)
    boosted = skus(api_client.get(f"{API}/recommendations/customer/C0?n=10"))
    assert boosted.index(base[-1]) < base.index(base[-1])


def test_realtime_view_moves_similar_up_and_purchase_disappears(api_client, shop):
    before = skus(api_client.get(f"{API}/recommendations/customer/C0?n=10"))
    assert before[0].startswith("M")
    event = {"customer": "C0", "type": "view", "sku": "S1", "timestamp": "2024-06-03T12:00:00Z"}
    for _ in range(3):
        assert api_client.post(f"{API}/events", event, format="json").status_code == 201
    after = skus(api_client.get(f"{API}/recommendations/customer/C0?n=10"))
    shirts_before = min(before.index(s) for s in before if s.startswith("S"))
    shirts_after = min(after.index(s) for s in after if s.startswith("S"))
    assert shirts_after < shirts_before
    top = after[0]
    buy = {"customer": "C0", "type": "purchase", "sku": top, "timestamp": "2024-06-03T13:00:00Z", "order_id": "rt1"}
    r = api_client.post(f"{API}/events", buy, format="json")
    assert r.status_code == 201, r.content
    assert top not in skus(api_client.get(f"{API}/recommendations/customer/C0?n=10"))


def test_fbt_lift_ranking_with_min_support(api_client, shop, add_events, make_customer, settings):
    from shop_recs.serving.fbt import build_fbt, compute_fbt

    # Hand-computed: 6 baskets. A=1,B=2,C=3. count A=4, B=3, C=4, D=1.
    baskets = [{1, 2}, {1, 2}, {1, 3}, {1, 3, 2}, {3}, {3, 4}]
    table = compute_fbt(baskets, min_support=2)
    # support(A,B)=3 lift=3*6/(4*3)=1.5; support(A,C)=2 lift=2*6/(4*4)=0.75; (B,C)=1 < 2 dropped; (C,D)=1 dropped
    assert table[1] == [(2, 1.5, 3), (3, 0.75, 2)]
    assert 4 not in table and [r[0] for r in table[3]] == [1]

    store, p = shop["products"]["M0"].store, shop["products"]
    cust = make_customer(store, "FBT")
    from datetime import UTC, datetime

    day = datetime(2024, 6, 2, 10, tzinfo=UTC)
    rows = []
    for k in range(3):
        rows += [
            (cust, p["S0"], "purchase", day + timedelta(days=k), f"x{k}"),
            (cust, p["S3"], "purchase", day + timedelta(days=k), f"x{k}"),
        ]
    add_events(store, rows)
    build_fbt(store)
    got = skus(api_client.get(f"{API}/products/S0/frequently-bought-together?n=5"))
    assert got[0] == "S3"


def test_log_inserts_can_skip_the_wal_wait_without_changing_the_statement():
    from shop_recs.platform.sql import without_wal_wait

    assert without_wal_wait("INSERT INTO t (a, b) VALUES (%s, %s::jsonb) RETURNING id") == (
        "WITH _async AS (SELECT set_config('synchronous_commit', 'off', true)) "
        "INSERT INTO t (a, b) SELECT %s, %s::jsonb FROM _async RETURNING id"
    )
