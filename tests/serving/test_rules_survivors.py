"""Serving rules: promises only a mutation run of ``shop_recs/serving/rules.py`` showed untested (issue #17).

``benchmarks/mutation.py --only serving_rules`` after the placements work: a request's placement picks
its rules, the category filter's fallback for ids it cannot hash never reuses another call's mask, and
``rank_positions`` answers in the dtypes ``RankedPositions`` documents whatever widths it is given.
Expected lists are worked out from the promise (which products each rule set lets through), not read
off the code. The survivors left, and why they change nothing, are in docs/benchmarks.md.
"""

from __future__ import annotations

import numpy as np
import pytest

from shop_recs.catalog.models import Category
from shop_recs.serving import placements as plc
from shop_recs.serving.rules import Candidate, RuleContext, Rules, apply_rules, category_mask, rank_positions
from shop_recs.serving.snapshot import catalog_snapshot
from shop_recs.stores.scoping import store_scope, unscoped

pytestmark = pytest.mark.django_db


@pytest.fixture
def cats(store) -> dict[str, Category]:
    with unscoped():
        return {name: Category.objects.create(store=store, name=name, path=name) for name in ("Mugs", "Hats")}


@pytest.fixture
def items(store, cats, make_product) -> dict:
    return {
        "M1": make_product(store, "M1", category=cats["Mugs"]),
        "M2": make_product(store, "M2", category=cats["Mugs"]),
        "H1": make_product(store, "H1", category=cats["Hats"]),
    }


def _skus(items: dict, out: list[Candidate]) -> list[str]:
    by_pk = {p.pk: sku for sku, p in items.items()}
    return [by_pk[c.product_id] for c in out]


def test_a_request_naming_a_placement_gets_that_placements_rules(store, items):
    with store_scope(store):
        sidebar = plc.create_placement(store, None, key="sidebar", name="Sidebar")
        row = plc.rules_row(sidebar)
        row.blocked_product_ids = [items["M1"].pk]
        row.save()
    candidates = [Candidate(items[s].pk, score, "collaborative", "") for s, score in (("M1", 3), ("M2", 2), ("H1", 1))]
    with store_scope(store):
        default = apply_rules(store, candidates, context=RuleContext(limit=5))
        in_sidebar = apply_rules(store, candidates, context=RuleContext(limit=5, placement="sidebar"))
        unknown = apply_rules(store, candidates, context=RuleContext(limit=5, placement="no-such-placement"))
    assert _skus(items, default) == ["M1", "M2", "H1"]
    assert _skus(items, in_sidebar) == ["M2", "H1"]  # the sidebar blocks M1
    assert _skus(items, unknown) == ["M1", "M2", "H1"]  # an unknown key falls back to the default's


class _UnhashableId:
    """A category id that converts with ``int()`` but cannot be hashed (so it cannot key the cache)."""

    __hash__ = None  # type: ignore[assignment]

    def __init__(self, value: int) -> None:
        self.value = value

    def __int__(self) -> int:
        return self.value


def test_category_ids_that_cannot_be_hashed_are_matched_afresh_every_call(store, items, cats):
    snap = catalog_snapshot(store)
    mugs = category_mask(snap, [_UnhashableId(cats["Mugs"].pk)])
    hats = category_mask(snap, [_UnhashableId(cats["Hats"].pk)])
    assert sorted(int(pk) for pk in snap.pks[mugs]) == sorted([items["M1"].pk, items["M2"].pk])
    assert sorted(int(pk) for pk in snap.pks[hats]) == [items["H1"].pk]


def test_rank_positions_answers_in_its_documented_dtypes_whatever_it_is_given(store, items):
    """``RankedPositions`` promises int64 positions and float64 scores: int32 positions and integer
    scores are widened first, so a boost of 1.5 on a score of 1 is 1.5, not a truncated 1."""
    snap = catalog_snapshot(store)
    pos = np.array([snap.index[items[s].pk] for s in ("M1", "M2", "H1")], dtype=np.int32)
    rules = Rules(boosted_products=frozenset({items["H1"].pk}), boost_weight=1.5)
    ranked = rank_positions(snap, rules, RuleContext(), pos, [3, 2, 1])
    assert ranked.pos.dtype == np.int64 and ranked.scores.dtype == np.float64
    # H1: 1 + (1.5 - 1) * max(|1|, 0.05 * (3 - 1)) = 1.5
    assert ranked.scores.tolist() == [3.0, 2.0, 1.5]
    assert [int(p) for p in ranked.pos] == [int(p) for p in pos]
