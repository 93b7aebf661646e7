"""The serving endpoints: customer and session recommendations, similar items, frequently bought
together, popular and trending; each returns a :class:`ServeResult` and logs the served list.

Everything per request is numpy over in-memory state. The API's hot path gets the customer and
their latest events from ``live_activity`` (cached per process, one query on a miss), the store's
serving state from ``runtime`` (the active version id trusted for a few seconds) and writes the list
row through :data:`LIST_LOG` (buffered in production), so a warm request makes no database round
trip (docs/serving.md, "Hot path"). BLAS runs single-threaded here (one user's scoring is faster
with 1 thread and web workers run in parallel anyway).

When the model version has precomputed serving arrays (``candidates.py``: each customer's top 200
candidates and each item's top 50 neighbours, written by training next to the artifact), customer
recommendations, similar items, MMR similarity and the ads' affinities read those instead of scoring
the catalog (``scoring.fast_score``). Without the arrays (a version trained before them, or a caller
passing its own ``model``, e.g. an experiment variant) the full scoring runs
(``scoring.score_history``). Module layout: ``runtime`` (per-store state), ``scoring``, ``reasons``
and this module (the endpoints, the list log).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from shop_recs.serving import realtime
from shop_recs.serving.fbt import fbt_table
from shop_recs.serving.reasons import fast_reasons, fill_simple_reasons, reason_texts
from shop_recs.serving.responses import CompactPage, ServeResult, finish, page_candidates, serve_compact
from shop_recs.serving.rules import (
    Candidate,
    RankedPositions,
    RuleContext,
    apply_rules,
    load_rules,
    rank_positions,
    ranks_by_score_alone,
    rules_for_request,
)
from shop_recs.serving.runtime import (
    ServingState,
    SimilarPool,
    serving_state,
    state_precomputed,
)
from shop_recs.serving.scoring import (
    POOL,
    SIMILAR_CONTENT_WEIGHT,
    SIMILAR_POOL_CACHE,
    PersonalMemo,
    Scored,
    blas_limit_ctx,
    cached_similar_rows,
    cold_candidates,
    cold_top,
    content_neighbours,
    diversity_similarity,
    fast_score,
    history_marks,
    neighbour_similarity,
    personal_top,
    scatter,
    score_history,
    to_pos,
    top_candidates,
    top_positions,
    with_trending_fill,
)
from shop_recs.stores.models import Store
from shop_recs.training import precompute as precomputed
from shop_recs.training.matrix import DEFAULT_EVENT_WEIGHTS

logger = logging.getLogger(__name__)

MAX_N = 100


def _context(
    state: ServingState, limit: int, filters: dict[str, Any] | None, placement: str = "", **kw: Any
) -> RuleContext:
    """The request's rule context; ``placement`` picks whose rules apply (``rules.load_rules``)."""
    filters = filters or {}
    category_ids = None
    if filters.get("category"):
        category_ids = state.snap.categories_under(filters["category"])
    return RuleContext(
        limit=limit,
        category_ids=category_ids,
        min_price=filters.get("min_price"),
        max_price=filters.get("max_price"),
        diversity=filters.get("diversity"),
        exclude=set(filters.get("exclude_ids", ())) | set(kw.pop("exclude", ())),
        similarity=(
            neighbour_similarity(state, state.pre)
            if state.pre is not None and state.loaded is not None
            else diversity_similarity(state)
        ),
        overrides=filters.get("overrides"),
        placement=placement,
        **kw,
    )


def _fill(personal: list[Candidate], cold: list[Candidate], skip: set[int]) -> list[Candidate]:
    """Cold candidates ranked strictly below every personal one (their own order kept)."""
    floor = min((c.score for c in personal), default=0.0) - 1.0
    out = [c for c in cold if c.product_id not in skip]
    for rank, cand in enumerate(out):
        cand.score = floor - rank * 1e-3
    return out


def _rank(store: Store, state: ServingState, ctx: RuleContext, pos: np.ndarray, scores: np.ndarray, **kw: Any) -> Any:
    """The store's rules over candidate arrays of this state's snapshot (``rules.rank_positions``)."""
    rules, purchased, excluded = rules_for_request(store, ctx, kw.pop("customer_id", None))
    return rank_positions(state.snap, rules, ctx, pos, scores, purchased=purchased, excluded=excluded, **kw)


#: Served pages kept per cached customer (distinct placements, filters, paging).
MAX_MEMO_PAGES = 8


def _page_key(
    store: Store,
    state: ServingState,
    n: int,
    offset: int,
    placement: str,
    filters: dict[str, Any] | None,
    algorithm: str | None,
) -> tuple | None:
    """Everything a customer's served page depends on besides their activity (the memo lives on the
    activity entry, which the customer's next event drops): the serving state (model version and
    catalog snapshot), the store's rules *value* (an edit makes a new one), the request's paging,
    placement and filters, and the language of the reason texts. ``None`` (no memo) for per-call rule
    overrides (the dashboard preview)."""
    filters = filters or {}
    if filters.get("overrides"):
        return None
    request = tuple(
        sorted(
            (k, frozenset(v) if isinstance(v, set | frozenset | list) else v)
            for k, v in filters.items()
            if v is not None
        )
    )
    return (state.built_at, load_rules(store, placement), n, offset, placement, request, algorithm, get_language())


def recommend_for_customer(
    store: Store,
    customer: Any | None,
    *,
    n: int = 10,
    offset: int = 0,
    placement: str = "",
    filters: dict[str, Any] | None = None,
    model: Any = None,
    algorithm: str | None = None,
    log: bool = True,
) -> ServeResult:
    """Personal recommendations; a customer with no history (or unknown) gets trending (per country).

    ``customer`` is a ``Customer`` or a :class:`realtime.ServingCustomer` (the API's hot path: its
    activity and the active version id were read in the same query as the customer).

    Three paths: the precomputed lists (:func:`_customer_precomputed`), no history
    (:func:`_customer_cold`) and full scoring (:func:`_customer_scored`).
    """
    prefetched = isinstance(customer, realtime.ServingCustomer)
    state = serving_state(store)
    if prefetched:
        activity = customer.activity
    else:
        activity = realtime.recent_activity(state.store_id, customer.pk) if customer is not None else None
    weights = activity.weights() if activity else {}
    limit = offset + n
    ctx = _context(state, limit + 0, filters, placement, purchased=activity.purchased if activity else set())
    country = (getattr(customer, "country", "") if customer else "") or ""
    pre = state_precomputed(state, model) if weights else None
    if pre is not None:
        return _customer_precomputed(
            store,
            state,
            pre,
            customer,
            activity,
            weights,
            ctx,
            country,
            n=n,
            offset=offset,
            placement=placement,
            filters=filters,
            algorithm=algorithm,
            log=log,
            prefetched=prefetched,
        )
    if not weights:
        return _customer_cold(store, state, customer, ctx, country, n=n, offset=offset, placement=placement, log=log)
    return _customer_scored(
        store,
        state,
        customer,
        activity,
        weights,
        ctx,
        country,
        n=n,
        offset=offset,
        placement=placement,
        model=model,
        algorithm=algorithm,
        log=log,
    )


def _customer_precomputed(
    store: Store,
    state: ServingState,
    pre: precomputed.Precomputed,
    customer: Any,
    activity: Any,
    weights: dict[int, float],
    ctx: RuleContext,
    country: str,
    *,
    n: int,
    offset: int,
    placement: str,
    filters: dict[str, Any] | None,
    algorithm: str | None,
    log: bool,
    prefetched: bool,
) -> ServeResult:
    """The precomputed path: arrays all the way through the rules; Candidate objects only for the
    served page, which a prefetched customer's activity entry memoises (``_page_key``) as a
    :class:`CompactPage` (its rendered JSON minus the shared product cards)."""
    page_key = _page_key(store, state, n, offset, placement, filters, algorithm) if prefetched else None
    pages = customer.memo.setdefault("pages", {}) if page_key is not None else None
    memoised = pages.get(page_key) if pages is not None else None
    if memoised is not None:
        return serve_compact(
            state, memoised, placement=placement, customer_id=customer.pk, algorithm=algorithm, log=log
        )
    texts = reason_texts()
    customer_pk = customer.pk
    limit = offset + n
    k = max(POOL, 3 * limit)
    fs, exclude_pos, personal_pos, personal_scores, mark, memo = _personal_candidates(
        state, pre, customer, activity, weights, k, prefetched
    )
    n_personal = len(personal_pos)
    ranked = _rank_personal(
        store, state, ctx, customer_pk, limit, country, exclude_pos, personal_pos, personal_scores, mark
    )
    personal, trending = (fs.reason, "", None), ("trending", "", None)
    page = page_candidates(state.snap, ranked, offset, n, lambda src: personal if src < n_personal else trending, texts)
    fast_reasons(state, pre, fs, page, texts)
    if memo is not None:
        memo.note_anchors(fs)
    if pages is None:
        return finish(
            state,
            "customer",
            page,
            0,
            n,
            placement=placement,
            customer_id=customer_pk,
            algorithm=algorithm,
            log=log,
            texts=texts,
        )
    # ``finish`` without its item dicts: the page is answered from its memo form right away.
    fill_simple_reasons(page, texts)
    compact = CompactPage.of(state.snap, page)
    if len(pages) >= MAX_MEMO_PAGES:
        pages.clear()
    pages[page_key] = compact
    return serve_compact(
        state, compact, placement=placement, customer_id=customer_pk, algorithm=algorithm, log=log, page=page
    )


def _personal_candidates(
    state: ServingState,
    pre: precomputed.Precomputed,
    customer: Any,
    activity: Any,
    weights: dict[int, float],
    k: int,
    prefetched: bool,
) -> tuple[Any, Any, np.ndarray, np.ndarray, np.ndarray | None, PersonalMemo | None]:
    """The customer's top ``k`` personal candidates: from the memo on their activity entry when it
    applies, else scored (``fast_score``) and memoised. Returns (fast scores, excluded history
    positions, positions, scores, per-position marks or ``None`` when they came from the memo, the
    memo they came from or ``None``: it keeps what ``fast_reasons`` finds, ``note_anchors``)."""
    memo = customer.memo.get("personal") if prefetched else None
    if memo is not None and memo.applies(state, k):
        personal_pos, personal_scores = memo.candidates()
        return memo.fast_scored(), memo.exclude_pos(), personal_pos, personal_scores, None, memo
    fs = fast_score(state, pre, customer.pk, weights, activity.recent_products)
    fs.purchased = activity.purchased
    index = state.snap.index
    # Seen-but-not-bought items are left out (as filter_already_liked_items does); purchases are
    # the purchased rule's business (repurchasable categories may bring them back).
    exclude_pos = [index[pk] for pk in weights if pk in index and pk not in activity.purchased]
    personal_pos, personal_scores, mark = personal_top(state, fs, exclude_pos, k)
    if prefetched:
        customer.memo["personal"] = PersonalMemo.keep(state, k, fs, exclude_pos, personal_pos, personal_scores)
    return fs, exclude_pos, personal_pos, personal_scores, mark, None


def _rank_personal(
    store: Store,
    state: ServingState,
    ctx: RuleContext,
    customer_pk: int,
    limit: int,
    country: str,
    exclude_pos: Any,
    personal_pos: np.ndarray,
    personal_scores: np.ndarray,
    mark: np.ndarray | None,
) -> RankedPositions:
    """The store's rules over the personal candidates, followed by the trending fill when needed."""
    rules, purchased, excluded = rules_for_request(store, ctx, customer_pk)
    # Both candidate lists come best first (the fill strictly below the personal ones, descending).
    rank_kw = {"purchased": purchased, "excluded": excluded, "unique": True, "in_catalog": True, "presorted": True}
    ranked = None
    if ranks_by_score_alone(state.snap, rules, ctx):
        # The trending fill scores below every personal candidate, so when ``limit`` personal
        # ones pass the rules (and nothing but the score orders them) it cannot reach the page.
        ranked = rank_positions(state.snap, rules, ctx, personal_pos, personal_scores, **rank_kw)
        if len(ranked) < limit:
            ranked = None
    if ranked is None:
        if mark is None:
            mark = history_marks(state, exclude_pos, personal_pos)
        pos, scores = with_trending_fill(state, personal_pos, personal_scores, mark, country)
        ranked = rank_positions(state.snap, rules, ctx, pos, scores, **rank_kw)
    return ranked


def _customer_cold(
    store: Store,
    state: ServingState,
    customer: Any | None,
    ctx: RuleContext,
    country: str,
    *,
    n: int,
    offset: int,
    placement: str,
    log: bool,
) -> ServeResult:
    """No history: the (country's) trending list, ranked once per state; nothing to score."""
    texts = reason_texts()
    pos, scores = cold_top(state, "trending", country)
    ranked = _rank(
        store,
        state,
        ctx,
        pos,
        scores,
        customer_id=getattr(customer, "pk", None),
        unique=True,
        in_catalog=True,
        presorted=True,
    )
    cold = ("trending", "", None)
    page = page_candidates(state.snap, ranked, offset, n, lambda src: cold, texts)
    return finish(
        state,
        "customer",
        page,
        0,
        n,
        placement=placement,
        customer_id=getattr(customer, "pk", None),
        algorithm="trending",
        log=log,
        texts=texts,
    )


def _customer_scored(
    store: Store,
    state: ServingState,
    customer: Any,
    activity: Any,
    weights: dict[int, float],
    ctx: RuleContext,
    country: str,
    *,
    n: int,
    offset: int,
    placement: str,
    model: Any,
    algorithm: str | None,
    log: bool,
) -> ServeResult:
    """Full scoring of the catalog (no precomputed arrays, or the caller's own ``model``)."""
    limit = offset + n
    with blas_limit_ctx():
        scored = score_history(state, weights, activity.recent_products, model=model)
        scored.purchased = activity.purchased
        # Seen-but-not-bought items are left out (as filter_already_liked_items does); purchases are
        # the purchased rule's business (repurchasable categories may bring them back).
        scored.exclude_pos = [
            state.snap.index[pk] for pk in weights if pk in state.snap.index and pk not in activity.purchased
        ]
        candidates = top_candidates(state, scored, scored.reason, k=max(POOL, 3 * limit))
        # Thin or exotic histories: fill with trending so a page is never short.
        candidates += _fill(candidates, cold_candidates(state, "trending", country), set(weights) - activity.purchased)
        ranked = apply_rules(store, candidates, customer_id=customer.pk, context=ctx)
        return finish(
            state,
            "customer",
            ranked,
            offset,
            n,
            placement=placement,
            customer_id=customer.pk,
            scored=scored,
            algorithm=algorithm,
            log=log,
            model=model,
        )


def recommend_for_session(
    store: Store, viewed_pks: list[int], *, n: int = 10, placement: str = "", filters: dict[str, Any] | None = None
) -> ServeResult:
    """Anonymous visitor: item-based scores from the products they viewed (newest last in the input)."""
    state = serving_state(store)
    recent = list(dict.fromkeys(reversed(viewed_pks)))
    weights = {pk: DEFAULT_EVENT_WEIGHTS["view"] for pk in recent}
    ctx = _context(state, n, filters, placement, purchased=set())
    with blas_limit_ctx():
        if recent:
            scored = score_history(state, weights, recent)
            candidates = top_candidates(state, scored, scored.reason, k=max(POOL, 3 * n))
        else:
            scored = None
            candidates = []
        candidates += _fill(candidates, cold_candidates(state, "trending"), set(recent))
        ctx.exclude = set(ctx.exclude) | set(recent)
        ranked = apply_rules(store, candidates, context=ctx)
        return finish(state, "session", ranked, 0, n, placement=placement, scored=scored)


def similar_products(
    store: Store, product_pk: int, *, n: int = 10, placement: str = "", log: bool = True
) -> ServeResult:
    """Collaborative + content neighbours, so a product with no interactions has neighbours too."""
    state = serving_state(store)
    snap = state.snap
    pos = snap.index[product_pk]
    pool_size = max(POOL, 3 * n)
    pool = state.similar_pools.get((product_pk, pool_size))
    pre = state_precomputed(state)
    if pool is None:
        pool = _similar_pool(state, pre, product_pk, pos, pool_size)
        if len(state.similar_pools) >= SIMILAR_POOL_CACHE:
            state.similar_pools.pop(next(iter(state.similar_pools)), None)
        state.similar_pools[(product_pk, pool_size)] = pool
    texts = reason_texts()
    title = snap.titles[pos]
    # Both texts once per request, not per candidate.
    from_content = (
        "content_similar",
        texts.similar_to % {"title": title},
        product_pk,
    )
    from_collab = (
        "collaborative",
        texts.also_liked % {"title": title},
        product_pk,
    )
    # Pinned products lead similar items too (the rules page promises "always at the top").
    ctx = _context(state, n, None, placement, purchased=set(), exclude=[product_pk])
    ranked = _rank(store, state, ctx, pool.pos, pool.scores, unique=True, in_catalog=True, presorted=True)
    content_flags = pool.from_content
    page = page_candidates(snap, ranked, 0, n, lambda src: from_content if content_flags[src] else from_collab, texts)
    return finish(state, "similar", page, 0, n, placement=placement, anchor_product_id=product_pk, log=log, texts=texts)


def _similar_pool(
    state: ServingState, pre: precomputed.Precomputed | None, product_pk: int, pos: int, pool_size: int
) -> SimilarPool:
    """``similar_products``' pool before rules: from the neighbour lists, else by scoring the catalog."""
    snap, loaded = state.snap, state.loaded
    col = loaded.column_of(product_pk) if loaded else None
    if pre is not None:
        return _similar_pool_precomputed(state, pre, pos, col, pool_size)
    with blas_limit_ctx():
        content = realtime.minmax(snap.content_similar([pos]))
        collab = np.zeros(len(snap), dtype=np.float32)
        if col is not None:
            collab = scatter(state, realtime.minmax(cached_similar_rows(state, loaded.model, [col])[0]))
    content_weight = SIMILAR_CONTENT_WEIGHT if col is not None else 1.0
    scores = collab + content_weight * content
    scores[pos] = -np.inf
    idx, top = top_positions(scores, [], pool_size)
    return SimilarPool(idx, top, content_weight * content[idx] >= collab[idx])


def _similar_pool_precomputed(
    state: ServingState, pre: precomputed.Precomputed, pos: int, col: int | None, pool_size: int
) -> SimilarPool:
    """``similar_products``' pool from the neighbour lists: collaborative (0..1) + weighted content."""
    content_weight = SIMILAR_CONTENT_WEIGHT if col is not None else 1.0
    cpos, cscore = content_neighbours(state, pos, max(POOL, pool_size))
    parts = [(cpos, cscore, content_weight)]
    if col is not None:
        parts.append((to_pos(state, pre.item_cols[col]), pre.item_scores[col], 1.0))
    ids, scores = precomputed.blend(parts)
    content = np.zeros(len(ids), dtype=np.float32)
    if len(cpos):
        content[np.searchsorted(ids, cpos)] = content_weight * cscore
    keep = ids != pos
    ids, scores, content = ids[keep], scores[keep], content[keep]
    order = np.argsort(-scores, kind="stable")[:pool_size]
    collab = scores[order] - content[order]
    return SimilarPool(ids[order].astype(np.int64), scores[order].astype(np.float64), content[order] >= collab)


def frequently_bought_together(
    store: Store, product_pk: int, *, n: int = 5, placement: str = "", log: bool = True
) -> ServeResult:
    state = serving_state(store)
    title = state.snap.title_of(product_pk)
    rows = fbt_table(state.store_id).get(product_pk, [])
    candidates = [
        Candidate(
            pk, lift, "frequently_bought_together", _("Often bought with %(title)s") % {"title": title}, product_pk
        )
        for pk, lift, _support in rows
    ]
    # Only pinned products that are bought together lead here: the list claims "often bought with".
    ctx = _context(state, n, None, placement, purchased=set(), insert_pinned=False, exclude=[product_pk])
    ctx.diversity = 0.0
    ranked = apply_rules(store, candidates, context=ctx)
    return finish(
        state, "fbt", ranked, 0, n, placement=placement, anchor_product_id=product_pk, algorithm="fbt", log=log
    )


def popular(
    store: Store, kind: str, *, n: int = 10, placement: str = "", filters: dict[str, Any] | None = None
) -> ServeResult:
    state = serving_state(store)
    ctx = _context(state, n, filters, placement, purchased=set())
    ctx.diversity = 0.0 if ctx.diversity is None else ctx.diversity
    scores = state.trending if kind == "trending" else state.popularity
    pool = max(POOL, 3 * n)
    if ctx.category_ids is not None:
        # A category list must not run dry because the global top-100 is elsewhere.
        mask = np.isin(state.snap.category, list(ctx.category_ids))
        scores = np.where(mask, scores, -np.inf).astype(np.float32)
    candidates = top_candidates(state, Scored(scores, kind), kind, k=pool)
    ranked = apply_rules(store, candidates, context=ctx)
    return finish(state, kind, ranked, 0, n, placement=placement, algorithm=kind)
