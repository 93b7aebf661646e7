"""Store rules and store isolation on every serving endpoint, over HTTP with an API key.

Every endpoint a shop frontend calls (customer and session recommendations, similar items,
frequently bought together, popular, trending, search, ads) is checked the same way:

* (a) a product made inactive, one made out of stock and one blocked by ``StoreRules`` never appear
  (the victims are the endpoint's own top answers, so the check is never vacuous);
* (b) pins and boosts behave as docs/serving.md ("Rules") and docs/api.md say for that endpoint:
  a pinned product comes first; recommendations also *insert* a pin that was not a candidate,
  search moves a pinned product up only when it matches the query (``insert_pinned=False``);
* (c) isolation: the other store's key never sees this store's products (not even when it names
  this store's customers, skus or queries), and this store's answers never hold the other's.

Ads answer with campaigns, never with products (docs/ads.md): the rules have no product to filter
there, so ads are checked for isolation and for carrying no product fields at all.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shop_recs.serving.models import StoreRules
from shop_recs.stores.scoping import unscoped

pytestmark = pytest.mark.django_db
API = "/api/v1"
T1 = datetime(2024, 6, 3, 9, 0, tzinfo=UTC)

# What each endpoint is asked, per store: ``ids`` names the store's customer, anchor product and query.
ENDPOINTS = {
    "customer": lambda c, ids, n: c.get(f"{API}/recommendations/customer/{ids['customer']}?n={n}"),
    "session": lambda c, ids, n: c.post(
        f"{API}/recommendations/session", {"viewed": [ids["anchor"]], "n": n}, format="json"
    ),
    "similar": lambda c, ids, n: c.get(f"{API}/products/{ids['anchor']}/similar?n={n}"),
    "fbt": lambda c, ids, n: c.get(f"{API}/products/{ids['anchor']}/frequently-bought-together?n={n}"),
    "popular": lambda c, ids, n: c.get(f"{API}/popular?n={n}"),
    "trending": lambda c, ids, n: c.get(f"{API}/trending?n={n}"),
    "search": lambda c, ids, n: c.get(f"{API}/search", {"q": ids["query"], "n": n}),
}
#: Documented to add a pinned product that is not among the candidates (docs/serving.md, "Rules").
INSERTS_PINS = {"customer", "session", "similar", "popular", "trending"}
#: Documented to move a pinned product up only when it is a candidate (search: when it matches).
PINS_ONLY_CANDIDATES = {"search"}
#: What carries the serving reason code (search items have none).
HAS_REASONS = set(ENDPOINTS) - {"search"}

THIS = {"customer": "C0", "anchor": "M0", "query": "mug"}
OTHER = {"customer": "OC0", "anchor": "OM0", "query": "mug"}


def skus(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["sku"] for item in response.json()["items"]]


def ask(client, endpoint: str, ids: dict, n: int = 20) -> list[str]:
    return skus(ENDPOINTS[endpoint](client, ids, n))


def set_rules(store, **fields) -> None:
    with unscoped():
        rules, _ = StoreRules.objects.get_or_create(store=store)
        for k, v in fields.items():
            setattr(rules, k, v)
        rules.save()


def update_product(product, **fields) -> None:
    with unscoped():
        for k, v in fields.items():
            setattr(product, k, v)
        product.save()


@pytest.fixture(autouse=True)
def _search_sees_every_change(settings):
    settings.SEARCH_INDEX_CHECK_SECONDS = 0


@pytest.fixture
def baskets(shop, make_customer, add_events):
    """Orders where M0 is bought with M1, M2, M3, N0 and S0 (twice each: above FBT_MIN_SUPPORT)."""
    from shop_recs.serving.fbt import build_fbt

    store, p = shop["products"]["M0"].store, shop["products"]
    buyer = make_customer(store, "BASKETS")
    rows = []
    for k, partner in enumerate(["M1", "M2", "M3", "N0", "S0"] * 2):
        at = T1 + timedelta(hours=k)
        rows += [(buyer, p["M0"], "purchase", at, f"b{k}"), (buyer, p[partner], "purchase", at, f"b{k}")]
    add_events(store, rows)
    build_fbt(store)
    return shop


@pytest.fixture
def other_shop(other_store, make_product, make_customer, add_events):
    """The other store: its own mugs and shirts (other skus, same words), customers, baskets and model."""
    from shop_recs.serving.fbt import build_fbt
    from shop_recs.training.services import train_store

    products = {}
    for i in range(4):
        products[f"OM{i}"] = make_product(other_store, f"OM{i}", title=f"Ceramic coffee mug other {i}", price=11 + i)
        products[f"OS{i}"] = make_product(other_store, f"OS{i}", title=f"Cotton shirt other {i}", price=21 + i)
    customers = [make_customer(other_store, f"OC{i}") for i in range(8)]
    rows = []
    for c, cust in enumerate(customers):
        group = ["OM0", "OM1", "OM2", "OM3"] if c % 2 == 0 else ["OS0", "OS1", "OS2", "OS3"]
        for step, sku in enumerate(group[c % 4 :] + group[: c % 4]):
            rows.append((cust, products[sku], "purchase", T1 + timedelta(hours=c, minutes=step), f"oo{c}"))
    add_events(other_store, rows)
    train_store(other_store, algorithms=["item_knn"])
    build_fbt(other_store)
    return products


# --- (a) inactive, out of stock, blocked ------------------------------------------------------------


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_inactive_out_of_stock_and_blocked_never_served(api_client, baskets, endpoint):
    store, p = baskets["products"]["M0"].store, baskets["products"]
    before = ask(api_client, endpoint, THIS)
    assert len(before) >= 4, f"{endpoint}: the test needs 4 answers to remove 3, got {before}"
    inactive, out_of_stock, blocked = before[:3]  # the endpoint's own best answers
    update_product(p[inactive], is_active=False)
    update_product(p[out_of_stock], in_stock=False)
    set_rules(store, blocked_product_ids=[p[blocked].pk])
    after = ask(api_client, endpoint, THIS)
    assert after, f"{endpoint}: nothing left to serve"
    assert not {inactive, out_of_stock, blocked} & set(after), f"{endpoint} served {after}"
    # A pin does not bring them back either.
    set_rules(store, blocked_product_ids=[p[blocked].pk], pinned_product_ids=[p[s].pk for s in before[:3]])
    pinned = ask(api_client, endpoint, THIS)
    assert not {inactive, out_of_stock, blocked} & set(pinned), f"{endpoint} served pinned {pinned}"


def test_purchased_rule_where_it_applies(api_client, shop):
    """Recommendations drop what the customer bought; search keeps it findable (docs/api.md)."""
    # C0 bought M0.
    assert "M0" not in ask(api_client, "customer", THIS)
    got = skus(api_client.get(f"{API}/search", {"q": "mug", "customer": "C0", "n": 20}))
    assert "M0" in got


# --- (b) pins and boosts ----------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_a_pinned_candidate_comes_first(api_client, baskets, endpoint):
    store, p = baskets["products"]["M0"].store, baskets["products"]
    before = ask(api_client, endpoint, THIS)
    assert len(before) >= 2
    last = before[-1]
    set_rules(store, pinned_product_ids=[p[last].pk])
    body = ENDPOINTS[endpoint](api_client, THIS, 20).json()
    assert body["items"][0]["sku"] == last, endpoint
    if endpoint in HAS_REASONS:
        assert body["items"][0]["reason"]["code"] == "pinned"
    assert [i["sku"] for i in body["items"]].count(last) == 1


@pytest.mark.parametrize("endpoint", sorted(INSERTS_PINS | PINS_ONLY_CANDIDATES))
def test_a_pin_outside_the_candidates(api_client, baskets, make_product, endpoint):
    """Recommendations insert it first; search does not inject a product that does not match."""
    store = baskets["products"]["M0"].store
    hose = make_product(store, "HOSE", title="Garden hose")
    before = ask(api_client, endpoint, THIS, n=3)
    assert "HOSE" not in before
    set_rules(store, pinned_product_ids=[hose.pk])
    after = ask(api_client, endpoint, THIS, n=3)
    if endpoint in INSERTS_PINS:
        assert after[0] == "HOSE" and len(after) == 3, after
    else:
        assert "HOSE" not in after and after == before


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_a_boost_moves_a_product_up(api_client, baskets, endpoint):
    store, p = baskets["products"]["M0"].store, baskets["products"]
    before = ask(api_client, endpoint, THIS)
    assert len(before) >= 2
    last = before[-1]
    set_rules(store, boosted_product_ids=[p[last].pk], boost_weight=100.0)
    after = ask(api_client, endpoint, THIS)
    assert after.index(last) < before.index(last), (endpoint, before, after)


# --- (c) isolation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_stores_never_see_each_others_products(api_client, other_api_client, baskets, other_shop, endpoint):
    mine, theirs = set(baskets["products"]), set(other_shop)
    got = ask(api_client, endpoint, THIS)
    assert got and set(got) <= mine, (endpoint, got)
    got = ask(other_api_client, endpoint, OTHER)
    assert got and set(got) <= theirs, (endpoint, got)
    # The other store's key naming this store's customer, skus or query: unknown to it.
    r = ENDPOINTS[endpoint](other_api_client, THIS, 20)
    if endpoint in ("similar", "fbt"):
        assert r.status_code == 404, r.content
    else:
        assert not set(skus(r)) & mine, (endpoint, r.json())


def make_campaign(store, name: str, product) -> int:
    from django.utils import timezone

    from shop_recs.ads.models import Campaign, CampaignStatus

    now = timezone.now()
    with unscoped():
        campaign = Campaign.objects.create(
            store=store,
            name=name,
            title=f"{name} headline",
            landing_url="https://shop.example/landing",
            starts_at=now - timedelta(days=1),
            ends_at=now + timedelta(days=10),
            budget=1000,
            frequency_cap=100,
            status=CampaignStatus.ACTIVE,
        )
        campaign.products.set([product])
    return campaign.pk


def test_ads_answer_each_store_with_its_own_campaigns(
    api_client, other_api_client, shop, other_shop, store, other_store
):
    mine = {make_campaign(store, f"A{i}", shop["products"][f"M{i}"]) for i in range(2)}
    theirs = {make_campaign(other_store, f"B{i}", other_shop[f"OM{i}"]) for i in range(2)}
    for client, own, customer in ((api_client, mine, "C0"), (other_api_client, theirs, "OC0")):
        for query in ("", f"&customer={customer}"):
            body = client.get(f"{API}/ads?n=10{query}").json()
            assert {ad["campaign_id"] for ad in body["ads"]} == own, body
            # Campaigns with their own promoted products' cards (issue #14), never another store's.
            for ad in body["ads"]:
                keys = {"impression_id", "campaign_id", "title", "image_url", "landing_url", "score", "products"}
                assert set(ad) == keys
                assert {p["sku"][0] for p in ad["products"]} == ({"M"} if own is mine else {"O"})
    # This store's customer is a stranger to the other store's key.
    body = other_api_client.get(f"{API}/ads?n=10&customer=C0").json()
    assert body["customer_known"] is False and {ad["campaign_id"] for ad in body["ads"]} == theirs
    imp = api_client.get(f"{API}/ads?n=1").json()["ads"][0]["impression_id"]
    assert other_api_client.post(f"{API}/ads/impressions/{imp}/click").status_code == 404
