"""Store rules: the merchant's filters, pins and boosts, applied to every list the store serves.

The public interface (stable; product search calls it too)::

    from shop_recs.serving.rules import Candidate, RuleContext, apply_rules, load_rules

    ranked = apply_rules(store, [Candidate(product_id=pk, score=s, reason_code="collaborative", reason_text="")],
                         customer_id=customer.pk, context=RuleContext(limit=10))

``apply_rules`` filters (unknown/blocked/inactive/out-of-stock/already purchased unless the category is
repurchasable/explicitly excluded), boosts (multiplies the score of boosted products and categories),
orders by score, optionally diversifies (MMR) and puts pinned products first. It never queries the
database when ``context.purchased`` is given (or no customer is given): the rules and the catalog facts
it needs come from in-memory snapshots, cached per store and process (the catalog's: ``snapshot.py``).

Placements: each placement of a store has its own rules (``RuleContext.placement`` names it;
``load_rules(store, placement)``); a request naming no placement, or one the store does not have,
gets the default placement's. The rules snapshot and its cache live in ``rules_snapshot.py``.

Freshness: ``StoreRules``/``Placement`` saves and deletes and ``Product``/``Category`` saves drop this
process's snapshots at once; other processes (and bulk upserts, which send no signals) pick changes
up within ``SERVING_RULES_TTL`` / ``SERVING_CATALOG_TTL`` seconds (defaults 30 and 60).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from django.utils.translation import gettext as _

from shop_recs.activity.models import Event
from shop_recs.recsys.rerank import mmr_rerank
from shop_recs.serving.rules_snapshot import (
    PlacementRules,
    Rules,
    invalidate_rules,
    load_rules,
    placement_rules,
    placement_served,
    rules_from_row,
)
from shop_recs.serving.snapshot import CatalogSnapshot, catalog_snapshot, remember_derived

if TYPE_CHECKING:
    from shop_recs.stores.models import Store

__all__ = [
    "Candidate",
    "PlacementRules",
    "RuleContext",
    "Rules",
    "apply_rules",
    "invalidate_rules",
    "load_rules",
    "placement_rules",
    "placement_served",
    "rules_from_row",
]

REASON_CODES = (
    "because_viewed",
    "popular",
    "trending",
    "content_similar",
    "boosted",
    "pinned",
    "collaborative",
    "frequently_bought_together",
    "search",
)


@dataclass
class Candidate:
    """One product proposed for a list, with why. ``anchor_product_id`` is the history item behind it."""

    product_id: int
    score: float
    reason_code: str
    reason_text: str
    anchor_product_id: int | None = None


@dataclass
class RuleContext:
    """What the caller knows about this request.

    * ``purchased``: product pks the customer bought; ``None`` lets ``apply_rules`` look them up
      (one query) when a customer is given and the purchased rule is on.
    * ``exclude``: product pks the caller wants out (``?exclude=`` skus, the anchor product, ...).
    * ``limit``: keep at most this many (after pins); ``None`` keeps all.
    * ``insert_pinned``: add pinned products that are not among the candidates (recommendations do;
      search passes ``False`` so only matching pinned products move to the top).
    * ``diversity``: MMR strength 0..1; ``None`` uses the store's default.
    * ``similarity``: ``pks -> (k, k) array`` for MMR; default: same category = 1.
    * ``overrides``: rule fields replaced for this call only (dashboard preview).
    * ``category_ids``/``min_price``/``max_price``: request filters, applied like rules.
    """

    purchased: Iterable[int] | None = None
    exclude: Iterable[int] = ()
    limit: int | None = None
    insert_pinned: bool = True
    diversity: float | None = None
    similarity: Callable[[np.ndarray], np.ndarray] | None = None
    overrides: dict[str, Any] | None = None
    category_ids: frozenset[int] | None = None
    min_price: float | None = None
    max_price: float | None = None
    placement: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# --- applying -----------------------------------------------------------------------------------


def purchased_products(customer_id: int) -> set[int]:
    """Product pks the customer ever bought (one query on the ``(customer, -timestamp)`` index)."""
    qs = Event.objects.filter(customer_id=customer_id, event_type="purchase", product__isnull=False)
    return set(qs.order_by().values_list("product_id", flat=True).distinct())


def _category_similarity(snap: CatalogSnapshot) -> Callable[[np.ndarray], np.ndarray]:
    def sim(pks: np.ndarray) -> np.ndarray:
        cats = np.array([snap.category_of(pk) for pk in pks.tolist()])
        out = (cats[:, None] == cats[None, :]) & (cats[:, None] >= 0)
        return out.astype(np.float64)

    return sim


# --- rules as arrays over catalog positions -----------------------------------------------------------


@dataclass(frozen=True)
class RuleMasks:
    """A ``Rules`` value as arrays over a snapshot's catalog positions (built once per snapshot and rules).

    The per-product rules then cost one array lookup for all candidates instead of Python set and
    dict tests per candidate.
    """

    allowed: np.ndarray  # bool: not blocked, and active / in stock where those rules are on
    repurchasable: np.ndarray | None  # bool: the category is repurchasable; None: no such category
    boosted: np.ndarray | None  # bool: product or category boosted; None: boosts change nothing
    pinned: tuple[tuple[int, int], ...]  # (pk, catalog position or -1), in the rules' order


def _build_rule_masks(snap: CatalogSnapshot, rules: Rules) -> RuleMasks:
    n = len(snap)
    index = snap.index
    allowed = np.ones(n, dtype=bool)
    if rules.exclude_inactive:
        allowed &= snap.active
    if rules.exclude_out_of_stock:
        allowed &= snap.in_stock
    allowed[[index[pk] for pk in rules.blocked if pk in index]] = False
    repurchasable = None
    if rules.repurchasable_categories:
        repurchasable = np.isin(snap.category, np.fromiter(rules.repurchasable_categories, dtype=np.int64))
    boosted = None
    if float(rules.boost_weight) != 1.0 and (rules.boosted_products or rules.boosted_categories):
        boosted = np.zeros(n, dtype=bool)
        boosted[[index[pk] for pk in rules.boosted_products if pk in index]] = True
        if rules.boosted_categories:
            boosted |= np.isin(snap.category, np.fromiter(rules.boosted_categories, dtype=np.int64))
    pinned = tuple((int(pk), index.get(int(pk), -1)) for pk in rules.pinned)
    return RuleMasks(allowed, repurchasable, boosted, pinned)


def rule_masks(snap: CatalogSnapshot, rules: Rules) -> RuleMasks:
    """``rules`` as arrays over ``snap``'s positions, cached on the snapshot per rules value."""
    # ``load_rules`` hands out the same object until its TTL: found by identity first (hashing the
    # frozen dataclass costs more than everything else here); the entry keeps the object alive.
    by_id = snap._derived.get(("rules-id", id(rules)))
    if by_id is not None and by_id[0] is rules:
        return by_id[1]
    try:
        key = ("rules", rules)
        hit = snap._derived.get(key)
    except TypeError:  # an override set a field to an unhashable value: build, don't cache
        return _build_rule_masks(snap, rules)
    if hit is None:
        hit = _build_rule_masks(snap, rules)
        remember_derived(snap._derived, key, hit)
    remember_derived(snap._derived, ("rules-id", id(rules)), (rules, hit))
    return hit


def ranks_by_score_alone(snap: CatalogSnapshot, rules: Rules, ctx: RuleContext) -> bool:
    """True when these rules only filter and sort by score (no boosts, pins or diversity).

    Then candidates scored below ``ctx.limit`` surviving ones can never reach the ranked list, so a
    caller may rank its best candidates first and add lower-scored ones only when that comes up short.
    """
    diversity = rules.diversity if ctx.diversity is None else float(ctx.diversity)
    return ctx.limit is not None and diversity <= 0 and not rules.pinned and rule_masks(snap, rules).boosted is None


def category_mask(snap: CatalogSnapshot, category_ids: frozenset[int]) -> np.ndarray:
    """Bool over catalog positions: the product's category is one of ``category_ids`` (cached)."""
    try:
        key = ("category", frozenset(category_ids))
    except TypeError:
        key = None
    hit = snap._derived.get(key) if key is not None else None
    if hit is None:
        hit = np.isin(snap.category, np.fromiter((int(c) for c in category_ids), dtype=np.int64))
        if key is not None:
            remember_derived(snap._derived, key, hit)
    return hit


def _request_drops(
    snap: CatalogSnapshot, masks: RuleMasks, purchased: Iterable[int], excluded: Iterable[int]
) -> np.ndarray | None:
    """Bool over catalog positions of this request's drops (excluded; purchased, unless repurchasable)."""
    index = snap.index
    drop = [index[pk] for pk in excluded if pk in index]
    bought = [index[pk] for pk in purchased if pk in index]
    if bought and masks.repurchasable is not None:
        bought = [i for i, again in zip(bought, masks.repurchasable[bought].tolist(), strict=True) if not again]
    if not drop and not bought:
        return None
    mark = np.zeros(len(snap), dtype=bool)
    mark[drop + bought] = True
    return mark


def _allowed_positions(
    snap: CatalogSnapshot,
    masks: RuleMasks,
    ctx: RuleContext,
    pos: np.ndarray,
    drops: np.ndarray | None,
    in_catalog: bool = False,
) -> np.ndarray:
    """Which ``pos`` pass every filter (rules and request): the vectorised per-product rule.

    ``in_catalog``: every position is a catalog position (no -1 to drop).
    """
    if not len(snap):
        return np.zeros(len(pos), dtype=bool)
    if in_catalog:
        p = pos
        ok = masks.allowed[p]
    else:
        valid = pos >= 0
        p = np.where(valid, pos, 0)
        ok = masks.allowed[p] & valid
    if drops is not None:
        ok &= ~drops[p]
    if ctx.category_ids is not None:
        ok &= category_mask(snap, ctx.category_ids)[p]
    if ctx.min_price is not None or ctx.max_price is not None:
        price = snap.prices[p]
        ok &= ~np.isnan(price)
        with np.errstate(invalid="ignore"):
            if ctx.min_price is not None:
                ok &= price >= ctx.min_price
            if ctx.max_price is not None:
                ok &= price <= ctx.max_price
    return ok


@dataclass
class RankedPositions:
    """:func:`rank_positions`' answer, best first (at most ``context.limit`` entries)."""

    src: np.ndarray  # int64: index into the input arrays; -1 for a pinned product the rules inserted
    pos: np.ndarray  # int64: catalog positions
    scores: np.ndarray  # float64, boosts applied (an inserted pin scores like the top candidate)
    boosted: np.ndarray  # bool: a boost applied (popular/trending reasons then become "boosted")
    n_pinned: int  # the first ``n_pinned`` entries are the pins, in the rules' order

    def __len__(self) -> int:
        return len(self.src)


def rank_positions(
    snap: CatalogSnapshot,
    rules: Rules,
    ctx: RuleContext,
    pos: np.ndarray,
    scores: np.ndarray,
    *,
    purchased: Iterable[int] = (),
    excluded: Iterable[int] = (),
    unique: bool = False,
    in_catalog: bool = False,
    presorted: bool = False,
) -> RankedPositions:
    """The rules over candidates given as arrays (catalog positions, -1: unknown; scores).

    The array core of :func:`apply_rules` (same filters, boosts, order, pins and MMR): the serving
    hot path calls it directly and builds ``Candidate`` objects for the served page only.
    ``purchased`` is already the set the purchased rule uses (empty when the rule is off);
    ``unique=True`` promises no position repeats (skips the first-occurrence pass), ``in_catalog=True``
    that none is -1, ``presorted=True`` that the scores are best first already (ties in input order,
    no NaN), so the sort runs only when a boost changed them.
    """
    masks = rule_masks(snap, rules)
    pos = np.asarray(pos, dtype=np.int64)
    drops = _request_drops(snap, masks, purchased, excluded)
    idx = _allowed_positions(snap, masks, ctx, pos, drops, in_catalog).nonzero()[0]
    if not unique and len(idx) > 1:
        # The first occurrence of each product (as a "seen" set would keep).
        _u, first = np.unique(pos[idx], return_index=True)
        if len(first) < len(idx):
            idx = idx[np.sort(first)]
    cand_pos = pos[idx]
    sc = np.asarray(scores, dtype=np.float64)[idx]
    boosted, rescored = _apply_boosts(masks, rules, cand_pos, sc)
    # A stable sort of scores already in order is the identity: skip it when nothing moved.
    order = np.arange(len(idx)) if presorted and not rescored else np.argsort(-sc, kind="stable")
    pins: tuple[list[int], list[int], list[float]] = ([], [], [])
    if masks.pinned:
        pins, order = _take_pins(snap, masks, ctx, drops, idx, cand_pos, sc, order)
    return _diversify_and_cut(snap, rules, ctx, idx, cand_pos, sc, boosted, order, pins)


def _apply_boosts(masks: RuleMasks, rules: Rules, cand_pos: np.ndarray, sc: np.ndarray) -> tuple[np.ndarray, bool]:
    """Boost ``sc`` in place; returns which candidates were boosted and whether any score changed."""
    if masks.boosted is None or not len(cand_pos):
        return np.zeros(len(cand_pos), dtype=bool), False
    # Boosts multiply positive scores (and divide negative ones) so a boost always moves an item up.
    boosted = masks.boosted[cand_pos]
    # (w - 1) times the score's size, but at least 5% of the list's score span per unit of
    # weight, so zero and negative scores move too and w < 1 demotes.
    span = float(sc.max() - sc.min()) or 1.0
    sc[boosted] += (float(rules.boost_weight) - 1.0) * np.maximum(np.abs(sc[boosted]), 0.05 * span)
    return boosted, bool(boosted.any())


def _take_pins(
    snap: CatalogSnapshot,
    masks: RuleMasks,
    ctx: RuleContext,
    drops: np.ndarray | None,
    idx: np.ndarray,
    cand_pos: np.ndarray,
    sc: np.ndarray,
    order: np.ndarray,
) -> tuple[tuple[list[int], list[int], list[float]], np.ndarray]:
    """The pins in the rules' order as (input index or -1 if inserted, position, score), and ``order``
    without them."""
    pin_src: list[int] = []
    pin_pos: list[int] = []
    pin_scores: list[float] = []
    at = {p: k for k, p in enumerate(cand_pos.tolist())}
    top = float(sc[order[0]]) if len(order) else 1.0
    pin_ok = _allowed_positions(
        snap, masks, ctx, np.array([p for _pk, p in masks.pinned], dtype=np.int64), drops
    ).tolist()
    is_pinned = np.zeros(len(idx), dtype=bool)
    for (_pk, p), ok in zip(masks.pinned, pin_ok, strict=True):
        k = at.get(p) if p >= 0 else None
        if k is not None:
            is_pinned[k] = True
            pin_src.append(int(idx[k]))
            pin_pos.append(p)
            pin_scores.append(float(sc[k]))
        elif ctx.insert_pinned and ok:
            pin_src.append(-1)
            pin_pos.append(p)
            pin_scores.append(top)
    return (pin_src, pin_pos, pin_scores), order[~is_pinned[order]]


def _diversify_and_cut(
    snap: CatalogSnapshot,
    rules: Rules,
    ctx: RuleContext,
    idx: np.ndarray,
    cand_pos: np.ndarray,
    sc: np.ndarray,
    boosted: np.ndarray,
    order: np.ndarray,
    pins: tuple[list[int], list[int], list[float]],
) -> RankedPositions:
    """MMR over the ordered candidates (when diversity is on), cut to the limit after the pins."""
    pin_src, pin_pos, pin_scores = pins
    n_pinned = len(pin_src)
    diversity = rules.diversity if ctx.diversity is None else float(ctx.diversity)
    room = None if ctx.limit is None else max(0, ctx.limit - n_pinned)
    if diversity > 0 and len(order) > 1:
        need = max(50, 3 * (room or 10))
    else:
        need = room
    kept = order if need is None else order[:need]
    if diversity > 0 and len(kept) > 1:
        # MMR over a bounded pool (``need``): quadratic in the pool size, never over the whole catalog.
        ids = snap.pks[cand_pos[kept]]
        sim = ctx.similarity or _category_similarity(snap)
        # mmr_rerank indexes similarity rows by the ids it is given, so hand it positions 0..k-1.
        chosen, _s = mmr_rerank(np.arange(len(kept)), sc[kept], lambda p: sim(ids[p]), diversity=diversity, N=room)
        kept = kept[chosen]
    if ctx.limit is not None:
        kept = kept[: max(0, ctx.limit - n_pinned)]
        if n_pinned > ctx.limit:
            n_pinned = ctx.limit
            pin_src, pin_pos, pin_scores = pin_src[:n_pinned], pin_pos[:n_pinned], pin_scores[:n_pinned]
    if n_pinned:
        return RankedPositions(
            np.concatenate([np.array(pin_src, dtype=np.int64), idx[kept]]),
            np.concatenate([np.array(pin_pos, dtype=np.int64), cand_pos[kept]]),
            np.concatenate([np.array(pin_scores, dtype=np.float64), sc[kept]]),
            np.concatenate([np.zeros(n_pinned, dtype=bool), boosted[kept]]),
            n_pinned,
        )
    return RankedPositions(idx[kept], cand_pos[kept], sc[kept], boosted[kept], 0)


def rules_for_request(
    store: Store | int, ctx: RuleContext, customer_id: int | None = None
) -> tuple[Rules, set[int], set[int]]:
    """The rules (with the context's overrides) and the purchased and excluded pks this request's
    rules use (purchases: one query only when the context lacks them)."""
    rules = load_rules(store, ctx.placement).with_overrides(ctx.overrides)
    purchased: set[int] = set()
    if rules.exclude_purchased:
        if ctx.purchased is not None:
            purchased = {int(p) for p in ctx.purchased}
        elif customer_id is not None:
            purchased = purchased_products(customer_id)
    return rules, purchased, {int(p) for p in ctx.exclude}


def apply_rules(
    store: Store | int,
    candidates: list[Candidate],
    *,
    customer_id: int | None = None,
    context: RuleContext | None = None,
) -> list[Candidate]:
    """Filter, boost, order, diversify and pin ``candidates`` by the store's rules (see module doc).

    Returns new ``Candidate`` objects (inputs are not modified), best first. Candidates naming a
    product that is not in the store's catalog are dropped.
    """
    ctx = context or RuleContext()
    rules, purchased, excluded = rules_for_request(store, ctx, customer_id)
    snap = catalog_snapshot(store)
    n_cands = len(candidates)
    index = snap.index
    pos = np.fromiter((index.get(int(c.product_id), -1) for c in candidates), dtype=np.int64, count=n_cands)
    scores = np.fromiter((float(c.score) for c in candidates), dtype=np.float64, count=n_cands)
    ranked = rank_positions(snap, rules, ctx, pos, scores, purchased=purchased, excluded=excluded)
    pinned_text = _("Featured by the shop") if ranked.n_pinned else ""
    boosted_text = _("Recommended by the shop") if ranked.boosted.any() else ""
    out: list[Candidate] = []
    rows = zip(
        ranked.src.tolist(), snap.pks[ranked.pos].tolist(), ranked.scores.tolist(), ranked.boosted.tolist(), strict=True
    )
    for k, (src, pk, score, boosted) in enumerate(rows):
        if src >= 0:
            cand = candidates[src]
            out_cand = Candidate(pk, score, cand.reason_code, cand.reason_text, cand.anchor_product_id)
        else:
            out_cand = Candidate(pk, score, "pinned", "")
        if k < ranked.n_pinned:
            out_cand.reason_code, out_cand.reason_text = "pinned", pinned_text
        elif boosted and out_cand.reason_code in ("popular", "trending"):
            out_cand.reason_code, out_cand.reason_text = "boosted", boosted_text
        out.append(out_cand)
    return out
