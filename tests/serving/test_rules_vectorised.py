"""The vectorised rules and the array fast path against straightforward per-item versions.

``apply_rules`` runs the rules as masks over catalog positions (``rules.rank_positions``) and the
customer fast path ranks arrays, builds ``Candidate`` objects for the served page only and skips the
trending fill when it cannot reach the page. Each is checked here against a plain Python version
of the same rule, on the small trained store of ``conftest.py``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from shop_recs.catalog.models import Product
from shop_recs.serving import rules as rules_mod
from shop_recs.serving import scoring
from shop_recs.serving import services as serving
from shop_recs.serving.rules import (
    Candidate,
    RuleContext,
    Rules,
    apply_rules,
)
from shop_recs.serving.services import recommend_for_customer, similar_products
from shop_recs.serving.snapshot import catalog_snapshot, invalidate_catalog
from shop_recs.stores.scoping import store_scope, unscoped
from shop_recs.training import precompute as precomputed


def _reference_apply_rules(snap, rules: Rules, candidates: list[Candidate], ctx: RuleContext, purchased: set[int]):
    """The rules one candidate at a time (the semantics ``apply_rules`` must keep)."""
    from django.utils.translation import gettext as _

    from shop_recs.recsys.rerank import mmr_rerank

    excluded = {int(p) for p in ctx.exclude}
    purchased = purchased if rules.exclude_purchased else set()

    def allowed(pk: int) -> bool:
        i = snap.index.get(pk)
        if i is None or pk in rules.blocked or pk in excluded:
            return False
        if rules.exclude_inactive and not snap.active[i]:
            return False
        if rules.exclude_out_of_stock and not snap.in_stock[i]:
            return False
        if pk in purchased and int(snap.category[i]) not in rules.repurchasable_categories:
            return False
        if ctx.category_ids is not None and int(snap.category[i]) not in ctx.category_ids:
            return False
        if ctx.min_price is not None or ctx.max_price is not None:
            price = snap.prices[i]
            if np.isnan(price):
                return False
            if ctx.min_price is not None and price < ctx.min_price:
                return False
            if ctx.max_price is not None and price > ctx.max_price:
                return False
        return True

    seen: set[int] = set()
    kept: list[Candidate] = []
    for cand in candidates:
        pk = int(cand.product_id)
        if pk in seen or not allowed(pk):
            continue
        seen.add(pk)
        kept.append(Candidate(pk, float(cand.score), cand.reason_code, cand.reason_text, cand.anchor_product_id))
    weight = float(rules.boost_weight)
    if weight != 1.0 and (rules.boosted_products or rules.boosted_categories) and kept:
        span = (max(c.score for c in kept) - min(c.score for c in kept)) or 1.0
        for cand in kept:
            if cand.product_id in rules.boosted_products or snap.category_of(cand.product_id) in (
                rules.boosted_categories
            ):
                cand.score += (weight - 1.0) * max(abs(cand.score), 0.05 * span)
                if cand.reason_code in ("popular", "trending"):
                    cand.reason_code, cand.reason_text = "boosted", _("Recommended by the shop")
    kept.sort(key=lambda c: -c.score)  # stable, like the argsort
    pinned: list[Candidate] = []
    top = kept[0].score if kept else 1.0
    by_pk = {c.product_id: c for c in kept}
    for pk in rules.pinned:
        if pk in by_pk:
            cand = replace(by_pk[pk])
        elif ctx.insert_pinned and allowed(pk):
            cand = Candidate(pk, top, "pinned", "")
        else:
            continue
        cand.reason_code, cand.reason_text = "pinned", _("Featured by the shop")
        pinned.append(cand)
    kept = [c for c in kept if c.product_id not in set(rules.pinned)]
    diversity = rules.diversity if ctx.diversity is None else float(ctx.diversity)
    room = None if ctx.limit is None else max(0, ctx.limit - len(pinned))
    need = max(50, 3 * (room or 10)) if diversity > 0 and len(kept) > 1 else room
    kept = kept if need is None else kept[:need]
    if diversity > 0 and len(kept) > 1:
        ids = np.array([c.product_id for c in kept], dtype=np.int64)
        sim = ctx.similarity or rules_mod._category_similarity(snap)
        positions, _s = mmr_rerank(
            np.arange(len(kept)),
            np.array([c.score for c in kept]),
            lambda p: sim(ids[p]),
            diversity=diversity,
            N=room,
        )
        kept = [kept[int(p)] for p in positions.tolist()]
    out = pinned + kept
    return out if ctx.limit is None else out[: ctx.limit]


def _as_tuples(cands: list[Candidate]) -> list[tuple]:
    return [(c.product_id, c.score, c.reason_code, c.reason_text, c.anchor_product_id) for c in cands]


@pytest.fixture
def varied_shop(shop, store):
    """The trained shop with an inactive product, one out of stock and one without a price."""
    p = shop["products"]
    with unscoped():
        Product.objects.filter(pk=p["M1"].pk).update(is_active=False)
        Product.objects.filter(pk=p["S2"].pk).update(in_stock=False)
        Product.objects.filter(pk=p["S3"].pk).update(price=None)
    invalidate_catalog()
    return shop


def _cases(shop) -> list[tuple[dict, dict, set[int]]]:
    """(rules overrides, context fields, purchased) combinations covering every rule."""
    p = {k: v.pk for k, v in shop["products"].items()}
    mugs, shirts = shop["categories"]["mugs"].pk, shop["categories"]["shirts"].pk
    return [
        ({}, {}, set()),
        ({}, {"limit": 3}, {p["M0"], p["S0"]}),
        ({"repurchasable_categories": frozenset({mugs})}, {"limit": 5}, {p["M0"], p["S0"]}),
        ({"exclude_purchased": False, "exclude_inactive": False, "exclude_out_of_stock": False}, {}, {p["M0"]}),
        ({"blocked": frozenset({p["M2"], 999_999})}, {"exclude": [p["S1"]], "limit": 4}, set()),
        ({}, {"category_ids": frozenset({shirts})}, set()),
        ({}, {"min_price": 11.0, "max_price": 21.5}, set()),
        ({}, {"min_price": 12.5}, set()),
        ({"boosted_products": frozenset({p["S1"]}), "boost_weight": 2.0}, {"limit": 4}, set()),
        ({"boosted_categories": frozenset({mugs}), "boost_weight": 0.5}, {}, set()),
        ({"boosted_categories": frozenset({shirts}), "boost_weight": 1.0}, {}, set()),
        ({"pinned": (p["N0"], p["S0"], 424_242)}, {"limit": 4}, set()),
        ({"pinned": (p["S0"], p["N0"])}, {"limit": 1, "insert_pinned": False}, set()),
        ({"pinned": (p["M2"],), "blocked": frozenset({p["M2"]})}, {"limit": 3}, set()),
        ({"diversity": 0.6}, {"limit": 4}, set()),
        ({"diversity": 0.6, "pinned": (p["S3"],)}, {"limit": 3, "diversity": 1.0}, set()),
        ({"boosted_products": frozenset({p["M3"]}), "pinned": (p["M3"],), "boost_weight": 3.0}, {"limit": 6}, set()),
    ]


@pytest.mark.django_db
def test_apply_rules_matches_the_per_item_rules(store, varied_shop):
    shop = varied_shop
    p = {k: v.pk for k, v in shop["products"].items()}
    snap = catalog_snapshot(store)
    rng = np.random.default_rng(7)
    pks = list(p.values())
    for overrides, ctx_fields, purchased in _cases(shop):
        for trial in range(4):
            # Random scores with ties, duplicates, an unknown product and mixed reason codes.
            chosen = list(rng.choice(pks, size=len(pks) + 3, replace=True)) + [888_888]
            scores = np.round(rng.normal(size=len(chosen)), 1)
            codes = ["collaborative", "trending", "popular", "content_similar"]
            cands = [
                Candidate(int(pk), float(s), codes[i % 4], f"t{i}", int(pks[i % len(pks)]) if i % 3 else None)
                for i, (pk, s) in enumerate(zip(chosen, scores, strict=True))
            ]
            ctx = RuleContext(purchased=set(purchased), overrides=overrides, **ctx_fields)
            with store_scope(store):
                got = apply_rules(store, cands, context=ctx)
                rules = rules_mod.load_rules(store).with_overrides(overrides)
                want = _reference_apply_rules(snap, rules, cands, ctx, set(purchased))
            assert _as_tuples(got) == _as_tuples(want), (overrides, ctx_fields, trial)
            assert [c.product_id for c in cands] == [int(pk) for pk in chosen]  # inputs untouched


@pytest.mark.django_db
def test_rule_masks_follow_rules_and_snapshot(store, varied_shop):
    p = {k: v.pk for k, v in varied_shop["products"].items()}
    snap = catalog_snapshot(store)
    rules = Rules(blocked=frozenset({p["S0"]}), pinned=(p["N0"], 123_456))
    masks = rules_mod.rule_masks(snap, rules)
    assert rules_mod.rule_masks(snap, rules) is masks  # cached per snapshot and rules value
    assert rules_mod.rule_masks(snap, replace(rules)) is masks  # an equal value finds it too
    for pk, i in snap.index.items():
        expected = pk != p["S0"] and bool(snap.active[i]) and bool(snap.in_stock[i])
        assert bool(masks.allowed[i]) is expected
    assert masks.pinned == ((p["N0"], snap.index[p["N0"]]), (123_456, -1))
    assert masks.boosted is None and masks.repurchasable is None
    # An override with an unhashable value still works (built, not cached).
    unhashable = replace(rules, blocked=[p["S0"]])  # type: ignore[arg-type]
    assert not rules_mod.rule_masks(snap, unhashable).allowed[snap.index[p["S0"]]]


def _reference_anchor_rows(item_cols, item_scores, anchor_cols, cols):
    rows = []
    for col in cols:
        row = -1
        if col is not None and len(anchor_cols):
            hit = item_cols[anchor_cols] == col
            best = np.where(hit, item_scores[anchor_cols], 0.0).max(axis=1)
            if best.max(initial=0) > 0:
                row = int(np.argmax(best))
        rows.append(row)
    return rows


def test_anchor_rows_match_the_per_item_search():
    rng = np.random.default_rng(3)
    n_items, width = 60, 8
    item_cols = rng.integers(-1, n_items, size=(n_items, width)).astype(np.int32)
    # Coarse scores make ties between anchors; some zeros are no neighbour at all.
    item_scores = (rng.integers(0, 4, size=(n_items, width)) / 4).astype(np.float32)
    pre = precomputed.Precomputed(
        np.zeros((1, 1), np.int32), np.zeros((1, 1), np.float32), item_cols, item_scores, np.zeros(n_items, np.float32)
    )
    for _ in range(200):
        anchors = rng.choice(n_items, size=int(rng.integers(0, 6)), replace=False).astype(np.int64)
        cols = [None if rng.random() < 0.2 else int(c) for c in rng.integers(0, n_items, size=10)]
        got = scoring.anchor_rows(pre, anchors, cols)
        assert got == _reference_anchor_rows(item_cols, item_scores, anchors, cols)


def test_blend_dense_and_sorted_sums_agree_bit_for_bit():
    rng = np.random.default_rng(11)
    for _ in range(50):
        parts = [
            (
                rng.integers(-1, 300, size=int(rng.integers(0, 120))),
                rng.random(size=0).astype(np.float32),
                float(w),
            )
            for w in rng.random(size=int(rng.integers(1, 5)))
        ]
        parts = [(p, rng.random(size=len(p)).astype(np.float32), w) for p, _s, w in parts]
        dense = precomputed.blend(parts, 300)
        sorted_ = precomputed.blend(parts)
        assert np.array_equal(dense[0], sorted_[0])
        assert dense[1].tobytes() == sorted_[1].tobytes()
        # The per-part arithmetic of the original blend: each part times its float32 weight.
        pos = np.concatenate([np.asarray(p, dtype=np.int64) for p, _s, _w in parts])
        sc = np.concatenate([np.asarray(s, dtype=np.float32) * np.float32(w) for _p, s, w in parts])
        ok = pos >= 0
        ids, inv = np.unique(pos[ok], return_inverse=True)
        assert np.array_equal(dense[0], ids)
        assert dense[1].tobytes() == np.bincount(inv, weights=sc[ok], minlength=len(ids)).astype(np.float32).tobytes()


def _served(result) -> list[tuple]:
    return [
        (i["sku"], i["score"], i["reason"]["code"], i["reason"]["text"], i["reason"]["anchor_sku"])
        for i in result.items
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("filters", [{}, {"category": "Kitchen"}, {"min_price": 21}, {"diversity": 0.5}])
def test_skipping_the_trending_fill_changes_nothing(store, varied_shop, monkeypatch, filters):
    """With only filters and the score ordering, a page of personal candidates never needs the fill."""
    customers = varied_shop["customers"]
    with store_scope(store):
        state = serving.serving_state(store)
        assert state.pre is not None  # the trained shop serves through the precomputed fast path
        for offset, n in ((0, 2), (0, 5), (2, 3)):
            fast = [
                _served(recommend_for_customer(store, c, n=n, offset=offset, filters=dict(filters), log=False))
                for c in customers
            ]
            monkeypatch.setattr(serving, "ranks_by_score_alone", lambda *a: False)
            full = [
                _served(recommend_for_customer(store, c, n=n, offset=offset, filters=dict(filters), log=False))
                for c in customers
            ]
            monkeypatch.undo()
            assert fast == full


@pytest.mark.django_db
def test_similar_items_keep_the_rules(store, varied_shop):
    p = {k: v.pk for k, v in varied_shop["products"].items()}
    with store_scope(store):
        items = similar_products(store, p["M0"], n=8, log=False).items
    skus = [i["sku"] for i in items]
    assert "M0" not in skus  # the anchor itself
    assert "M1" not in skus and "S2" not in skus  # inactive, out of stock
    assert all(i["reason"]["anchor_sku"] == "M0" for i in items)
    assert [i["score"] for i in items] == sorted((i["score"] for i in items), reverse=True)
