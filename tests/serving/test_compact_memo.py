"""The compact memo on a cached customer serves exactly what a fresh computation serves.

A cached customer keeps their personal candidates (``scoring.PersonalMemo``: int32 positions, float32
scores) and each served page (``responses.CompactPage``: the page's rendered JSON minus the product
cards), and is answered from them. These tests compare the response bytes (the list id aside) with
those of a fresh computation without any memo (a ``Customer`` row: ``render_items``' dicts encoded by
``json_response``): first answer, repeats, after an event, after a rules or catalog change, for every
customer of the test shop and several pages; and the float32 scores with what ``personal_top`` made.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import pytest

from shop_recs.api.fastpath import json_response
from shop_recs.serving import realtime, responses, scoring
from shop_recs.serving import services as serving
from shop_recs.serving.rules import Candidate
from shop_recs.stores.scoping import unscoped

API = "/api/v1"

#: Pages that exercise the page memo's key: size, paging, placement, a category filter, diversity.
REQUESTS: list[dict] = [
    {"n": 10},
    {"n": 3},
    {"n": 4, "offset": 2},
    {"n": 5, "placement": "home"},
    {"n": 5, "filters": {"category": "Kitchen"}},
    {"n": 6, "filters": {"diversity": 0.5}},
]


def rendered(result: responses.ServeResult) -> bytes:
    """The response body the API sends for ``result`` (``json_response``), with the list id blanked."""
    payload = result.as_dict()
    payload["list_id"] = ""
    return json_response(payload).content


def fresh(store, external_id: str, **kw) -> responses.ServeResult:
    """A fresh computation without a memo: the ``Customer`` row (its activity read again), served once."""
    from shop_recs.activity.models import Customer

    with unscoped():
        customer = Customer.objects.get(store=store, external_id=external_id)
    result = serving.recommend_for_customer(store, customer, **kw)
    assert result._json is None  # rendered from item dicts, not from a CompactPage
    return result


def assert_same(store, customer, external_id: str, ranked: list | None = None, **kw) -> responses.ServeResult:
    """Serve ``customer`` (a cached entry) and compare with :func:`fresh`; ``ranked`` (a list the
    rules' ranking appends to) must not grow while the entry is served: it came from the page memo."""
    calls = len(ranked) if ranked is not None else 0
    served = serving.recommend_for_customer(store, customer, **kw)
    if ranked is not None:
        assert len(ranked) == calls
    cold = fresh(store, external_id, **kw)
    assert rendered(served) == rendered(cold)
    assert served.items == cold.items
    assert [c.product_id for c in served.candidates] == [c.product_id for c in cold.candidates]
    return served


@pytest.mark.django_db
def test_memoised_pages_are_byte_identical_to_a_fresh_computation(shop, store, monkeypatch):
    ranked = []
    real_rank = serving.rank_positions
    monkeypatch.setattr(serving, "rank_positions", lambda *a, **k: ranked.append(1) or real_rank(*a, **k))
    for i in range(12):
        external_id = f"C{i}"
        customer, _active = realtime.customer_activity(store.pk, external_id)  # what the cache holds
        for kw in REQUESTS:
            first = assert_same(store, customer, external_id, **kw)  # computed, memoised, rendered from it
            again = assert_same(store, customer, external_id, ranked, **kw)  # from the page memo: not ranked
            assert again._json is not None and again.list_id != first.list_id
        assert isinstance(customer.memo["personal"], scoring.PersonalMemo)
        assert all(isinstance(page, responses.CompactPage) for page in customer.memo["pages"].values())
        # The personal memo alone (a page not seen yet): candidates from int32/float32, anchors kept.
        customer.memo["pages"].clear()
        for kw in REQUESTS:
            assert_same(store, customer, external_id, **kw)


@pytest.mark.django_db
def test_a_rules_or_catalog_change_is_not_served_from_the_memo(shop, store):
    from shop_recs.catalog.models import Product
    from shop_recs.serving.models import StoreRules
    from shop_recs.serving.snapshot import invalidate_catalog

    customer, _active = realtime.customer_activity(store.pk, "C0")
    before = serving.recommend_for_customer(store, customer, n=5)
    assert serving.recommend_for_customer(store, customer, n=5)._json is not None  # memoised
    top = before.items[0]["sku"]

    with unscoped():
        rules, _ = StoreRules.objects.get_or_create(store=store)
        rules.blocked_product_ids = [shop["products"][top].pk]
        rules.save()
    after_rules = assert_same(store, customer, "C0", n=5)
    assert top not in [item["sku"] for item in after_rules.items]

    second = after_rules.items[0]["sku"]
    with unscoped():
        Product.objects.filter(store=store, sku=second).update(
            price=77, title="Renamed mug", updated_at=datetime.now(UTC) + timedelta(days=1)
        )
    invalidate_catalog(store.pk)
    after_catalog = assert_same(store, customer, "C0", n=5)
    card = next(item for item in after_catalog.items if item["sku"] == second)
    assert card["price"] == "77.00" and card["title"] == "Renamed mug"


@pytest.mark.django_db
def test_personal_memo_gives_back_personal_tops_arrays_bit_for_bit(shop, store):
    state = serving.serving_state(store)
    pre = serving.state_precomputed(state)
    assert pre is not None
    for i in range(12):
        activity = realtime.customer_activity(store.pk, f"C{i}")[0].activity
        weights = activity.weights()
        fs = scoring.fast_score(state, pre, None, weights, activity.recent_products)
        fs.purchased = activity.purchased
        exclude = [state.snap.index[pk] for pk in weights if pk in state.snap.index and pk not in activity.purchased]
        pos, scores, _mark = scoring.personal_top(state, fs, exclude, 100)
        memo = scoring.PersonalMemo.keep(state, 100, fs, exclude, pos, scores)
        got_pos, got_scores = memo.candidates()
        assert got_pos.dtype == pos.dtype and np.array_equal(got_pos, pos)
        assert got_scores.dtype == np.float64 and np.array_equal(got_scores, scores)
        assert memo._f64 is None  # the blend is float32: nothing needed float64
        assert memo.exclude_pos().tolist() == exclude
        light = memo.fast_scored()
        assert light.reason == fs.reason and light.anchor_pks == fs.anchor_pks
        assert light.history_pos == fs.history_pos and np.array_equal(light.anchor_cols, fs.anchor_cols)
        assert light.purchased is activity.purchased


def test_personal_memo_keeps_what_float32_or_int32_cannot_hold():
    class State:
        built_at = 1.0

    fs = scoring.FastScored(np.zeros(0), np.zeros(0), "collaborative", np.array([3, 1]), [2**40, 5], [7])
    scores = np.array([0.1, 0.2])  # float64 values that float32 would round
    memo = scoring.PersonalMemo.keep(State(), 2, fs, [4], np.array([9, 8]), scores)
    assert memo.candidates()[1] is memo._f64 and np.array_equal(memo.candidates()[1], scores)
    light = memo.fast_scored()
    assert light.anchor_pks == [2**40, 5] and light.history_pos == [7] and light.anchor_cols.tolist() == [3, 1]
    light.anchors.update({2**40: (5, None), 11: (None, "content_similar"), 12: (2**40, None)})
    memo.note_anchors(light)
    assert memo.fast_scored().anchors == light.anchors


@pytest.mark.django_db
def test_compact_page_renders_exactly_what_orjson_makes_of_the_items(shop, store):
    """Awkward values: CJK, quotes, U+2028, a backslash, an anchor outside the catalog, scores that
    orjson writes with an exponent, negative scores, repeated reasons."""
    state = serving.serving_state(store)
    snap = state.snap
    pks = snap.pks[:6].tolist()
    snap.items[0] = {**snap.items[0], "title": '白色 "mug" \u2028 back\\slash'}
    page = [
        Candidate(pks[0], 1e-6, "because_viewed", "Because you viewed 白色 \u2029", pks[1]),
        Candidate(pks[1], -3.25, "trending", "Trending now", None),
        Candidate(pks[2], 2.5e21, "because_viewed", "Because you viewed 白色 \u2029", pks[1]),
        Candidate(pks[3], 0.1234567891, "because_viewed", "x", 10**9),  # anchor not in the catalog
        Candidate(pks[4], 0.0, "pinned", "Featured by the shop", None),
        Candidate(pks[5], 12.0, "trending", "Trending now", None),
    ]
    items = responses.render_items(snap, page)
    compact = responses.CompactPage.of(snap, page)
    assert compact.render(snap) == orjson.dumps(items)
    assert compact.positions().tolist() == [snap.index[pk] for pk in pks]
    again = responses.ServeResult.memoised(compact, snap, pks, "id", 1, "item_knn", "", "")
    body = json_response(again.as_dict()).content
    assert body == json_response({**again.as_dict(), "items": items}).content
    assert b"\\u2028" in body and b"\\u2029" in body
    assert again.items == items
    assert [c.product_id for c in again.candidates] == pks
    assert again.candidates[0].anchor_product_id == pks[1] and again.candidates[3].anchor_product_id is None
    assert responses.CompactPage.of(snap, []).render(snap) == b"[]"


# --- through the API, with the activity cache (PostgreSQL + Redis) -------------------------------------


def _event(customer: str, sku: str, kind: str = "view") -> dict:
    event = {"customer": customer, "type": kind, "sku": sku, "timestamp": datetime.now(UTC).isoformat()}
    if kind == "purchase":
        event["order_id"] = "o-memo"
    return event


def body_of(response) -> bytes:
    assert response.status_code == 200, response.content
    payload = orjson.loads(response.content)
    return response.content.replace(payload["list_id"].encode(), b"")


@pytest.mark.django_db(transaction=True)
def test_api_memo_pages_equal_cold_reads_before_and_after_events(api_client, shop, store, live_cache):
    """Through the fast path: the first answer, a repeat from the memo, and the answers after events
    written through to the cached entries, each equal to a computation without memo (the list id aside)."""
    cases = [("C0", "n=6", {"n": 6}), ("C3", "n=6", {"n": 6}), ("C6", "n=6", {"n": 6})]
    cases += [("C1", "n=3&offset=2", {"n": 3, "offset": 2}), ("C2", "placement=home", {"placement": "home"})]

    def cold(external_id: str, kw: dict) -> bytes:
        return rendered(fresh(store, external_id, **kw))

    def served(external_id: str, query: str) -> bytes:
        return body_of(api_client.get(f"{API}/recommendations/customer/{external_id}?{query}"))

    for external_id, query, kw in cases:
        first = served(external_id, query)
        hits = live_cache.stats()["hits"]
        warm = served(external_id, query)
        assert live_cache.stats()["hits"] == hits + 1  # the cached entry and its memoised page
        assert warm == first == cold(external_id, kw)
    # Events written through to the cached entries (a new entry, an empty memo): still equal.
    appended = live_cache.stats()["appended"]
    for external_id, sku, kind in [("C0", "S1", "view"), ("C3", "M2", "purchase"), ("C6", "S0", "add_to_cart")]:
        assert api_client.post(f"{API}/events", _event(external_id, sku, kind), format="json").status_code == 201
    assert live_cache.stats()["appended"] > appended
    for external_id, query, kw in cases:
        after = served(external_id, query)
        assert after == served(external_id, query) == cold(external_id, kw)
