"""Reasons for the served page: code, text ("Because you viewed ...") and anchor product.

Only the final page gets reasons (explanations cost per item). :func:`fast_reasons` reads the
precomputed neighbour lists; :func:`explain_reasons` asks the model (or its similarity rows) on the
full-scoring path. :func:`reason_texts` holds every message translated once per language.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from shop_recs.recsys.explain import explain
from shop_recs.serving.rules import Candidate
from shop_recs.serving.runtime import ServingState
from shop_recs.serving.scoring import FastScored, Scored, anchor_rows, content_neighbours
from shop_recs.serving.snapshot import CatalogSnapshot
from shop_recs.training import precompute as precomputed

#: Reason codes whose text never depends on the customer's history.
_FIXED_REASONS = frozenset({"pinned", "boosted", "popular", "trending"})


def fast_reasons(
    state: ServingState,
    pre: precomputed.Precomputed,
    fs: FastScored,
    items: list[Candidate],
    texts: ReasonTexts | None = None,
) -> None:
    """Reasons from the precomputed neighbour lists: the anchor is the history item whose list holds
    the candidate with the highest score; else the history product most content-similar to it."""
    loaded, snap = state.loaded, state.snap
    texts = texts or reason_texts()
    todo = [cand for cand in items if cand.reason_code not in _FIXED_REASONS]
    if not todo:
        return
    item_index, known = loaded.item_index, fs.anchors
    fresh = [cand for cand in todo if cand.product_id not in known]
    if fresh:
        cols = [item_index.get(cand.product_id) for cand in fresh]
        for cand, col, row in zip(fresh, cols, anchor_rows(pre, fs.anchor_cols, cols), strict=True):
            anchor = fs.anchor_pks[row] if row >= 0 else None
            code = None
            if anchor is None and fs.history_pos:
                i = snap.index.get(cand.product_id)
                best = 0.0
                for hp in fs.history_pos:
                    p, s = content_neighbours(state, hp)
                    m = np.flatnonzero(p == i)
                    if len(m) and s[m[0]] > best:
                        best, anchor = float(s[m[0]]), int(snap.pks[hp])
                if anchor is not None and col is None:
                    code = "content_similar"
            known[cand.product_id] = (anchor, code)
    for cand in todo:
        anchor, code = known[cand.product_id]
        if code is not None:
            cand.reason_code = code
        _set_reason_text(snap, cand, anchor, item_index.get(cand.product_id), fs.purchased, texts)


@dataclass(frozen=True)
class ReasonTexts:
    """Every reason message in one language: translated once per language and process, and looked up
    once per request (``get_language`` alone costs ~8 us a call)."""

    picked: str
    similar_to: str  # "%(title)s" templates from here on
    bought: str
    viewed: str
    also_liked: str
    simple: dict[str, str]  # reason code -> text, for the codes whose text names no product


_REASON_TEXTS: dict[str | None, ReasonTexts] = {}


def reason_texts() -> ReasonTexts:
    """The reason messages in the active language."""
    language = get_language()
    hit = _REASON_TEXTS.get(language)
    if hit is None:
        hit = _REASON_TEXTS[language] = ReasonTexts(
            picked=_("Picked for you"),
            similar_to=_("Similar to %(title)s"),
            bought=_("Because you bought %(title)s"),
            viewed=_("Because you viewed %(title)s"),
            also_liked=_("Customers who liked %(title)s also liked this"),
            simple={
                "popular": _("Popular in this shop"),
                "trending": _("Trending now"),
                "boosted": _("Recommended by the shop"),
                "pinned": _("Featured by the shop"),
            },
        )
    return hit


def _set_reason_text(
    snap: CatalogSnapshot,
    cand: Candidate,
    anchor: int | None,
    col: int | None,
    purchased: set[int],
    texts: ReasonTexts | None = None,
) -> None:
    texts = texts or reason_texts()
    if anchor is None:
        cand.reason_code = "collaborative" if col is not None else cand.reason_code
        cand.reason_text = texts.picked
        return
    cand.anchor_product_id = anchor
    title = snap.title_of(anchor)
    if cand.reason_code == "content_similar":
        cand.reason_text = texts.similar_to % {"title": title}
    elif anchor in purchased:
        cand.reason_code = "because_viewed"
        cand.reason_text = texts.bought % {"title": title}
    else:
        cand.reason_code = "because_viewed"
        cand.reason_text = texts.viewed % {"title": title}


def _explainer(model: Any) -> Any:
    """The model (or hybrid component) that can attribute a score to history items, if any."""
    if hasattr(model, "item_contributions"):
        return model
    for label in getattr(model, "labels", []):
        comp = model.models_[label]
        if hasattr(comp, "item_contributions") and label != getattr(model, "content_model", "content"):
            return comp
    return None


def explain_reasons(state: ServingState, scored: Scored, items: list[Candidate], model: Any = None) -> None:
    """Fill reason code, text and anchor for the final page only (explanations cost per item)."""
    snap, loaded = state.snap, state.loaded
    model = model if model is not None else (loaded.model if loaded else None)
    explainer = _explainer(model) if model is not None else None
    for cand in items:
        if cand.reason_code in ("pinned", "boosted", "popular", "trending"):
            continue
        anchor = None
        col = loaded.column_of(cand.product_id) if loaded else None
        if explainer is not None and col is not None and scored.hist_row is not None and scored.hist_row.nnz:
            try:
                contributions = _explain(explainer, scored.hist_row, col)
            except (TypeError, ValueError, IndexError):
                contributions = []
            if contributions:
                anchor = int(loaded.item_ids[contributions[0].item_id])
        if anchor is None and col is not None and scored.sim_rows is not None and len(scored.sim_pks):
            column = scored.sim_rows[:, col]
            if column.max(initial=0) > 0:
                anchor = scored.sim_pks[int(np.argmax(column))]
        if anchor is None and scored.history:
            pos = [snap.index[pk] for pk in scored.history[:20] if pk in snap.index]
            i = snap.index.get(cand.product_id)
            if pos and i is not None:
                x = snap.content_index()
                sims = np.asarray((x[pos] @ x[i].T).toarray()).ravel()
                if sims.max(initial=0) > 0:
                    anchor = int(snap.pks[pos[int(np.argmax(sims))]])
                    if col is None:
                        cand.reason_code = "content_similar"
        if anchor is None:
            cand.reason_code = "collaborative" if col is not None else cand.reason_code
            cand.reason_text = _("Picked for you")
            continue
        cand.anchor_product_id = anchor
        title = snap.title_of(anchor)
        if cand.reason_code == "content_similar":
            cand.reason_text = _("Similar to %(title)s") % {"title": title}
        elif anchor in scored.purchased:
            cand.reason_code = "because_viewed"
            cand.reason_text = _("Because you bought %(title)s") % {"title": title}
        else:
            cand.reason_code = "because_viewed"
            cand.reason_text = _("Because you viewed %(title)s") % {"title": title}


def _explain(explainer: Any, row: Any, col: int) -> list:
    return explain(explainer, row, col, top=1)


def fill_simple_reasons(items: list[Candidate], texts: ReasonTexts | None = None) -> None:
    simple = (texts or reason_texts()).simple
    for cand in items:
        if not cand.reason_text and cand.reason_code in simple:
            cand.reason_text = simple[cand.reason_code]
