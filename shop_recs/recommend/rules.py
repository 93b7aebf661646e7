"""Store rules: the merchant's filters, pins and boosts, applied to every list the store serves.

The public interface (stable; product search calls it too)::

    from shop_recs.recommend.rules import Candidate, RuleContext, apply_rules, load_rules

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
from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.utils.translation import gettext as _

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
    return float(getattr(settings, name, default))


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
    from shop_recs.recommend.models import StoreRules

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
    _content: Any = None

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

        path = CATEGORY_PATH_SEPARATOR.join(p.strip() for p in path.split(">"))
        prefix = path + CATEGORY_PATH_SEPARATOR
        return frozenset(pk for pk, p in self.category_paths.items() if p == path or p.startswith(prefix))

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
    if hit is not None and time.monotonic() - hit.built_at < _ttl("SERVING_CATALOG_TTL", 60.0):
        return hit
    snap = _build_catalog(store_id)
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
    rules = load_rules(store).with_overrides(ctx.overrides)
    snap = catalog_snapshot(store)
    purchased: set[int] = set()
    if rules.exclude_purchased:
        if ctx.purchased is not None:
            purchased = {int(p) for p in ctx.purchased}
        elif customer_id is not None:
            purchased = purchased_products(customer_id)
    excluded = {int(p) for p in ctx.exclude}

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

    # Vectorised over the candidates (masks from the snapshot's per-product arrays); Candidate objects
    # are built only for the part of the ranking the caller can use.
    n_cands = len(candidates)
    pks = np.fromiter((int(c.product_id) for c in candidates), dtype=np.int64, count=n_cands)
    index = snap.index
    pos = np.fromiter((index.get(pk, -1) for pk in pks.tolist()), dtype=np.int64, count=n_cands)
    ok = pos >= 0
    p = np.maximum(pos, 0)
    cat = snap.category[p] if len(snap) else np.full(n_cands, -1, dtype=np.int64)
    if rules.blocked or excluded:
        ok &= ~np.isin(pks, np.fromiter(rules.blocked | excluded, dtype=np.int64))
    if rules.exclude_inactive and len(snap):
        ok &= snap.active[p]
    if rules.exclude_out_of_stock and len(snap):
        ok &= snap.in_stock[p]
    if purchased:
        bought = np.isin(pks, np.fromiter(purchased, dtype=np.int64))
        if rules.repurchasable_categories:
            bought &= ~np.isin(cat, np.fromiter(rules.repurchasable_categories, dtype=np.int64))
        ok &= ~bought
    if ctx.category_ids is not None:
        ok &= np.isin(cat, np.fromiter(ctx.category_ids, dtype=np.int64))
    if (ctx.min_price is not None or ctx.max_price is not None) and len(snap):
        price = snap.prices[p]
        ok &= ~np.isnan(price)
        with np.errstate(invalid="ignore"):
            if ctx.min_price is not None:
                ok &= price >= ctx.min_price
            if ctx.max_price is not None:
                ok &= price <= ctx.max_price
    idx = np.flatnonzero(ok)
    # The first occurrence of each product (as a "seen" set would keep).
    _u, first = np.unique(pks[idx], return_index=True)
    idx = idx[np.sort(first)]
    seen = set(pks[idx].tolist())
    scores = np.fromiter((float(candidates[i].score) for i in idx.tolist()), dtype=np.float64, count=len(idx))

    # Boosts multiply positive scores (and divide negative ones) so a boost always moves an item up.
    weight = float(rules.boost_weight)
    boosted = np.zeros(len(idx), dtype=bool)
    if weight != 1.0 and (rules.boosted_products or rules.boosted_categories) and len(idx):
        # (w - 1) times the score's size, but at least 5% of the list's score span per unit of
        # weight, so zero and negative scores move too and w < 1 demotes.
        span = float(scores.max() - scores.min()) or 1.0
        if rules.boosted_products:
            boosted |= np.isin(pks[idx], np.fromiter(rules.boosted_products, dtype=np.int64))
        if rules.boosted_categories:
            boosted |= np.isin(cat[idx], np.fromiter(rules.boosted_categories, dtype=np.int64))
        scores[boosted] += (weight - 1.0) * np.maximum(np.abs(scores[boosted]), 0.05 * span)
    order = np.argsort(-scores, kind="stable")
    boosted_text = _("Recommended by the shop") if boosted.any() else ""

    def make(j: int) -> Candidate:
        cand = candidates[int(idx[j])]
        out = Candidate(int(pks[idx[j]]), float(scores[j]), cand.reason_code, cand.reason_text, cand.anchor_product_id)
        if boosted[j] and out.reason_code in ("popular", "trending"):
            out.reason_code, out.reason_text = "boosted", boosted_text
        return out

    pinned_set = set(rules.pinned)
    pinned: list[Candidate] = []
    if rules.pinned:
        order_pks = pks[idx[order]]
        is_pinned = np.isin(order_pks, np.fromiter(pinned_set, dtype=np.int64))
        by_pk = {int(order_pks[k]): make(int(order[k])) for k in np.flatnonzero(is_pinned).tolist()}
        top = float(scores[order[0]]) if len(order) else 1.0
        for pk in rules.pinned:
            if pk in by_pk:
                cand = by_pk[pk]
            elif ctx.insert_pinned and pk not in seen and allowed(pk):
                cand = Candidate(pk, top, "pinned", "")
            else:
                continue
            cand.reason_code, cand.reason_text = "pinned", _("Featured by the shop")
            pinned.append(cand)
        order = order[~is_pinned]

    diversity = rules.diversity if ctx.diversity is None else float(ctx.diversity)
    room = None if ctx.limit is None else max(0, ctx.limit - len(pinned))
    if diversity > 0 and len(order) > 1:
        need = max(50, 3 * (room or 10))
    else:
        need = None if room is None else room
    kept = [make(int(j)) for j in (order if need is None else order[:need]).tolist()]
    if diversity > 0 and len(kept) > 1:
        from shop_recs.recsys.rerank import mmr_rerank

        # MMR over a bounded pool: quadratic in the pool size, so never over the whole catalog.
        pool = kept[: max(50, 3 * (room or 10))]
        ids = np.array([c.product_id for c in pool], dtype=np.int64)
        scores = np.array([c.score for c in pool], dtype=np.float64)
        sim = ctx.similarity or _category_similarity(snap)
        # mmr_rerank indexes similarity rows by the ids it is given, so hand it positions 0..k-1.
        positions, _s = mmr_rerank(np.arange(len(pool)), scores, lambda pos: sim(ids[pos]), diversity=diversity, N=room)
        kept = [pool[int(p)] for p in positions.tolist()]
    out = pinned + kept
    return out if ctx.limit is None else out[: ctx.limit]
