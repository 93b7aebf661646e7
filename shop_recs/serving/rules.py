"""Store rules: the merchant's filters, pins and boosts, applied to every list the store serves.

The public interface (stable; product search calls it too)::

    from shop_recs.serving.rules import Candidate, RuleContext, apply_rules, load_rules

    ranked = apply_rules(store, [Candidate(product_id=pk, score=s, reason_code="collaborative", reason_text="")],
                         customer_id=customer.pk, context=RuleContext(limit=10))

``apply_rules`` filters (unknown/blocked/inactive/out-of-stock/already purchased unless the category is
repurchasable/explicitly excluded), boosts (multiplies the score of boosted products and categories),
orders by score, optionally diversifies (MMR) and puts pinned products first. It never queries the
database when ``context.purchased`` is given (or no customer is given): the rules and the catalog facts
it needs come from in-memory snapshots, cached per store and process.

Freshness: ``StoreRules.save()`` and ``Product``/``Category`` saves drop this process's snapshots at
once; other processes (and bulk upserts, which send no signals) pick changes up within
``SERVING_RULES_TTL`` / ``SERVING_CATALOG_TTL`` seconds (defaults 30 and 60).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from django.db.models.signals import post_delete, post_save
from django.utils.translation import gettext as _

from shop_recs.platform.conf import setting
from shop_recs.stores.scoping import store_scope

if TYPE_CHECKING:
    from shop_recs.stores.models import Store

__all__ = [
    "Candidate",
    "CatalogSnapshot",
    "RuleContext",
    "Rules",
    "apply_rules",
    "catalog_snapshot",
    "invalidate_catalog",
    "invalidate_rules",
    "load_rules",
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


@dataclass(frozen=True)
class Rules:
    """An immutable snapshot of a store's ``StoreRules`` row (defaults when the store has none)."""

    exclude_inactive: bool = True
    exclude_out_of_stock: bool = True
    exclude_purchased: bool = True
    repurchasable_categories: frozenset[int] = frozenset()
    blocked: frozenset[int] = frozenset()
    pinned: tuple[int, ...] = ()
    boosted_products: frozenset[int] = frozenset()
    boosted_categories: frozenset[int] = frozenset()
    boost_weight: float = 1.5
    diversity: float = 0.0

    def with_overrides(self, overrides: dict[str, Any] | None) -> Rules:
        """A copy with some fields replaced (the preview's "toggle a rule for this preview only")."""
        if not overrides:
            return self
        known = {k: v for k, v in overrides.items() if k in self.__dataclass_fields__ and v is not None}
        return replace(self, **known)


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


# --- rules snapshot ---------------------------------------------------------------------------

_rules_cache: dict[int, tuple[float, Rules]] = {}
_lock = threading.Lock()


def _ttl(name: str, default: float) -> float:
    return float(setting(name, default))


def _int_set(values: Any) -> frozenset[int]:
    return frozenset(int(v) for v in (values or []) if str(v).lstrip("-").isdigit())


def rules_from_row(row: Any) -> Rules:
    if row is None:
        return Rules()
    return Rules(
        exclude_inactive=row.exclude_inactive,
        exclude_out_of_stock=row.exclude_out_of_stock,
        exclude_purchased=row.exclude_purchased,
        repurchasable_categories=_int_set(row.repurchasable_category_ids),
        blocked=_int_set(row.blocked_product_ids),
        pinned=tuple(dict.fromkeys(int(v) for v in (row.pinned_product_ids or []))),
        boosted_products=_int_set(row.boosted_product_ids),
        boosted_categories=_int_set(row.boosted_category_ids),
        boost_weight=float(row.boost_weight),
        diversity=min(1.0, max(0.0, float(row.default_diversity))),
    )


def load_rules(store: Store | int) -> Rules:
    """The store's rules, from this process's cache (TTL ``SERVING_RULES_TTL``, dropped on save)."""
    from shop_recs.serving.models import StoreRules

    store_id = int(getattr(store, "pk", store))
    now = time.monotonic()
    hit = _rules_cache.get(store_id)
    if hit is not None and now - hit[0] < _ttl("SERVING_RULES_TTL", 30.0):
        return hit[1]
    with store_scope(store_id):
        rules = rules_from_row(StoreRules.objects.filter(store_id=store_id).first())
    with _lock:
        _rules_cache[store_id] = (now, rules)
    return rules


def invalidate_rules(store_id: int | None = None) -> None:
    with _lock:
        if store_id is None:
            _rules_cache.clear()
        else:
            _rules_cache.pop(int(store_id), None)


# --- catalog snapshot -------------------------------------------------------------------------


@dataclass
class CatalogSnapshot:
    """Everything serving needs to know about a store's products, in memory: no ORM on the hot path.

    Arrays are indexed by position ``i`` (``index[pk] -> i``). ``items[i]`` is the pre-built
    ``{"sku", "title", "price"}`` part of an API item.
    """

    store_id: int
    pks: np.ndarray
    index: dict[int, int]
    sku_to_pk: dict[str, int]
    skus: list[str]
    titles: list[str]
    prices: np.ndarray  # float64, NaN when unknown
    active: np.ndarray
    in_stock: np.ndarray
    category: np.ndarray  # category pk, -1 for none
    category_paths: dict[int, str]
    created: np.ndarray  # epoch seconds
    items: list[dict[str, Any]]
    documents: list[str]
    built_at: float = 0.0
    #: ``_catalog_fingerprint`` when built: an expired snapshot whose catalog has not changed is kept
    #: (with every array and cache derived from it) instead of being rebuilt.
    fingerprint: tuple[Any, ...] = ()
    _content: Any = None
    #: Arrays derived from this snapshot on demand (rule masks, category masks, category subtrees).
    #: They depend only on the snapshot (and the rules value in their key), so they live as long as it.
    _derived: dict[Any, Any] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.pks)

    def pos(self, pk: int) -> int | None:
        return self.index.get(int(pk))

    def category_of(self, pk: int) -> int:
        i = self.index.get(int(pk))
        return int(self.category[i]) if i is not None else -1

    def title_of(self, pk: int | None) -> str:
        i = self.index.get(int(pk)) if pk is not None else None
        return self.titles[i] if i is not None else ""

    def sku_of(self, pk: int | None) -> str | None:
        i = self.index.get(int(pk)) if pk is not None else None
        return self.skus[i] if i is not None else None

    def categories_under(self, path: str) -> frozenset[int]:
        """Category pks at ``path`` or below it (the catalog API's subtree semantics)."""
        from shop_recs.catalog.models import CATEGORY_PATH_SEPARATOR

        key = ("categories_under", path)
        hit = self._derived.get(key)
        if hit is None:
            path = CATEGORY_PATH_SEPARATOR.join(p.strip() for p in path.split(">"))
            prefix = path + CATEGORY_PATH_SEPARATOR
            hit = frozenset(pk for pk, p in self.category_paths.items() if p == path or p.startswith(prefix))
            _remember(self._derived, key, hit)
        return hit

    def content_index(self) -> Any:
        """L2-normalised TF-IDF rows of every product (built lazily, once per snapshot)."""
        if self._content is None:
            from sklearn.feature_extraction.text import TfidfVectorizer
            from sklearn.preprocessing import normalize

            docs = self.documents if any(d.strip() for d in self.documents) else ["_"] * len(self.documents)
            if not docs:
                import scipy.sparse as sp

                self._content = sp.csr_matrix((0, 1), dtype=np.float32)
            else:
                tfidf = TfidfVectorizer(sublinear_tf=True, dtype=np.float32).fit_transform(docs)
                self._content = normalize(tfidf, norm="l2", axis=1).tocsr()
        return self._content

    def content_similar(self, positions: Sequence[int], weights: Sequence[float] | None = None) -> np.ndarray:
        """Cosine of every product to the (weighted) profile of ``positions``; the inputs score -inf."""
        x = self.content_index()
        scores = np.zeros(len(self), dtype=np.float32)
        if not len(positions) or x.shape[0] == 0:
            return scores
        w = np.ones(len(positions), dtype=np.float32) if weights is None else np.asarray(weights, dtype=np.float32)
        profile = x[list(positions)].T @ w
        scores = np.asarray(x @ profile, dtype=np.float32).ravel()
        scores[list(positions)] = -np.inf
        return scores


_catalog_cache: dict[int, CatalogSnapshot] = {}


def _catalog_fingerprint(store_id: int) -> tuple[Any, ...]:
    """Changes when a product is added, updated (``updated_at``; bulk upserts set it too) or deleted,
    or a category is added or deleted. A category renamed in another process is seen on the next
    product change or restart (the search index has the same rule)."""
    from django.db.models import Count, Max

    from shop_recs.catalog.models import Category, Product

    with store_scope(store_id):
        products = Product.objects.order_by().aggregate(n=Count("id"), latest=Max("updated_at"), top=Max("id"))
        categories = Category.objects.order_by().aggregate(n=Count("id"), top=Max("id"))
    return (products["n"], products["latest"], products["top"], categories["n"], categories["top"])


def _build_catalog(store_id: int) -> CatalogSnapshot:
    from shop_recs.catalog.models import Category, Product

    with store_scope(store_id):
        rows = list(
            Product.objects.order_by("pk").values_list(
                "pk",
                "sku",
                "title",
                "price",
                "is_active",
                "in_stock",
                "category_id",
                "created_at",
                "brand",
                "description",
                "tags",
            )
        )
        paths = dict(Category.objects.values_list("pk", "path"))
    n = len(rows)
    pks = np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)
    prices = np.array([float(r[3]) if r[3] is not None else np.nan for r in rows], dtype=np.float64)
    items = [{"sku": r[1], "title": r[2], "price": (float(r[3]) if r[3] is not None else None)} for r in rows]
    docs = []
    for r in rows:
        tags = " ".join(str(t) for t in r[10]) if isinstance(r[10], list) else ""
        cat = paths.get(r[6], "") if r[6] else ""
        # Title twice: on short catalog texts it is the strongest signal of what the product is.
        docs.append(" ".join(p for p in (r[2], r[2], cat, r[8], tags, (r[9] or "")[:500]) if p))
    return CatalogSnapshot(
        store_id=store_id,
        pks=pks,
        index={int(pk): i for i, pk in enumerate(pks.tolist())},
        sku_to_pk={r[1]: r[0] for r in rows},
        skus=[r[1] for r in rows],
        titles=[r[2] for r in rows],
        prices=prices,
        active=np.array([bool(r[4]) for r in rows], dtype=bool),
        in_stock=np.array([bool(r[5]) for r in rows], dtype=bool),
        category=np.array([r[6] if r[6] is not None else -1 for r in rows], dtype=np.int64),
        category_paths=paths,
        created=np.array([r[7].timestamp() for r in rows], dtype=np.float64),
        items=items,
        documents=docs,
        built_at=time.monotonic(),
    )


def catalog_snapshot(store: Store | int) -> CatalogSnapshot:
    """This process's snapshot of the store's catalog (TTL ``SERVING_CATALOG_TTL``, dropped on save)."""
    store_id = int(getattr(store, "pk", store))
    hit = _catalog_cache.get(store_id)
    now = time.monotonic()
    if hit is not None and now - hit.built_at < _ttl("SERVING_CATALOG_TTL", 60.0):
        return hit
    fingerprint = _catalog_fingerprint(store_id)
    if hit is not None and hit.fingerprint == fingerprint:
        # Unchanged: keep the snapshot, so the serving state, its caches and the customers' memoised
        # candidates built on it stay valid (a rebuild costs a catalog read and every such cache).
        hit.built_at = now
        return hit
    snap = _build_catalog(store_id)
    snap.fingerprint = fingerprint
    with _lock:
        _catalog_cache[store_id] = snap
    return snap


def invalidate_catalog(store_id: int | None = None) -> None:
    with _lock:
        if store_id is None:
            _catalog_cache.clear()
        else:
            _catalog_cache.pop(int(store_id), None)


def _on_catalog_change(sender: Any, instance: Any, **kwargs: Any) -> None:
    invalidate_catalog(getattr(instance, "store_id", None))


def _connect_signals() -> None:
    from shop_recs.catalog.models import Category, Product

    for model in (Product, Category):
        post_save.connect(_on_catalog_change, sender=model, dispatch_uid=f"serving-catalog-save-{model.__name__}")
        post_delete.connect(_on_catalog_change, sender=model, dispatch_uid=f"serving-catalog-del-{model.__name__}")


_connect_signals()


# --- applying -----------------------------------------------------------------------------------


def purchased_products(customer_id: int) -> set[int]:
    """Product pks the customer ever bought (one query on the ``(customer, -timestamp)`` index)."""
    from shop_recs.activity.models import Event

    qs = Event.objects.filter(customer_id=customer_id, event_type="purchase", product__isnull=False)
    return set(qs.order_by().values_list("product_id", flat=True).distinct())


def _category_similarity(snap: CatalogSnapshot) -> Callable[[np.ndarray], np.ndarray]:
    def sim(pks: np.ndarray) -> np.ndarray:
        cats = np.array([snap.category_of(pk) for pk in pks.tolist()])
        out = (cats[:, None] == cats[None, :]) & (cats[:, None] >= 0)
        return out.astype(np.float64)

    return sim


# --- rules as arrays over catalog positions -----------------------------------------------------------

#: Derived arrays kept per snapshot (rule masks per distinct rules value, category masks, subtrees):
#: the store's own rules plus a few preview/experiment overrides; past this the oldest is dropped.
DERIVED_PER_SNAPSHOT = 64


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    while len(cache) >= DERIVED_PER_SNAPSHOT:
        cache.pop(next(iter(cache)), None)
    cache[key] = value


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
        _remember(snap._derived, key, hit)
    _remember(snap._derived, ("rules-id", id(rules)), (rules, hit))
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
            _remember(snap._derived, key, hit)
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

    # Boosts multiply positive scores (and divide negative ones) so a boost always moves an item up.
    if masks.boosted is not None and len(idx):
        boosted = masks.boosted[cand_pos]
        # (w - 1) times the score's size, but at least 5% of the list's score span per unit of
        # weight, so zero and negative scores move too and w < 1 demotes.
        span = float(sc.max() - sc.min()) or 1.0
        sc[boosted] += (float(rules.boost_weight) - 1.0) * np.maximum(np.abs(sc[boosted]), 0.05 * span)
        rescored = bool(boosted.any())
    else:
        boosted = np.zeros(len(idx), dtype=bool)
        rescored = False
    # A stable sort of scores already in order is the identity: skip it when nothing moved.
    order = np.arange(len(idx)) if presorted and not rescored else np.argsort(-sc, kind="stable")

    pin_src: list[int] = []
    pin_pos: list[int] = []
    pin_scores: list[float] = []
    if masks.pinned:
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
        order = order[~is_pinned[order]]

    n_pinned = len(pin_src)
    diversity = rules.diversity if ctx.diversity is None else float(ctx.diversity)
    room = None if ctx.limit is None else max(0, ctx.limit - n_pinned)
    if diversity > 0 and len(order) > 1:
        need = max(50, 3 * (room or 10))
    else:
        need = room
    kept = order if need is None else order[:need]
    if diversity > 0 and len(kept) > 1:
        from shop_recs.recsys.rerank import mmr_rerank

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
    rules = load_rules(store).with_overrides(ctx.overrides)
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
