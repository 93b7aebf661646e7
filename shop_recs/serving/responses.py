"""Served lists: the page's ``Candidate`` objects, the response items and the list log.

:func:`finish` turns a ranked page into a :class:`ServeResult` (reasons filled, items rendered) and
records it through :data:`LIST_LOG` (``RecommendationList`` rows: INSERTed now, or buffered and
written by the background flusher, per ``SERVING_LOG_BUFFER_ROWS``).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.utils import timezone

from shop_recs.platform import logbuffer
from shop_recs.serving import sql as serving_sql
from shop_recs.serving.reasons import ReasonTexts, explain_reasons, fill_simple_reasons
from shop_recs.serving.rules import Candidate, RankedPositions, placement_served
from shop_recs.serving.runtime import ServingState
from shop_recs.serving.scoring import Scored
from shop_recs.serving.snapshot import CatalogSnapshot


def page_candidates(
    snap: CatalogSnapshot,
    ranked: RankedPositions,
    offset: int,
    n: int,
    reason_of: Any,
    texts: ReasonTexts,
) -> list[Candidate]:
    """``Candidate`` objects for the served page only (the rules ranked arrays).

    ``reason_of(src) -> (code, text, anchor pk)`` describes input candidate ``src``; pins and boosts
    then relabel as ``apply_rules`` does.
    """
    end = offset + n
    rows = zip(
        range(offset, end),
        ranked.src[offset:end].tolist(),
        snap.pks[ranked.pos[offset:end]].tolist(),
        ranked.scores[offset:end].tolist(),
        ranked.boosted[offset:end].tolist(),
        strict=False,
    )
    page = []
    for k, src, pk, score, boosted in rows:
        code, text, anchor = reason_of(src) if src >= 0 else ("pinned", "", None)
        if k < ranked.n_pinned:
            code, text = "pinned", texts.simple["pinned"]
        elif boosted and code in ("popular", "trending"):
            code, text = "boosted", texts.simple["boosted"]
        page.append(Candidate(pk, score, code, text, anchor))
    return page


@dataclass
class ServeResult:
    """A served list: the items as plain dicts and what the log and the response carry."""

    items: list[dict[str, Any]]
    list_id: str
    model_version: int | None
    algorithm: str
    placement: str
    candidates: list[Candidate] = field(default_factory=list)
    #: The placement whose rules served the list: ``placement`` itself, or the store's default
    #: placement when the request named none or one the store does not have.
    rules_placement: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "list_id": self.list_id,
            "model_version": self.model_version,
            "algorithm": self.algorithm,
            "placement": self.placement,
            "rules_placement": self.rules_placement,
            "items": self.items,
        }


def render_items(snap: CatalogSnapshot, items: list[Candidate]) -> list[dict[str, Any]]:
    index, skus, bases = snap.index, snap.skus, snap.items
    out = []
    for cand in items:
        # A copy of the snapshot's pre-built card (snapshot.CARD_FIELDS; never handed out itself).
        item = dict(bases[index[cand.product_id]])
        item["score"] = round(float(cand.score), 6)
        anchor = cand.anchor_product_id
        at = index.get(int(anchor)) if anchor is not None else None
        item["reason"] = {
            "code": cand.reason_code,
            "text": cand.reason_text,
            "anchor_sku": skus[at] if at is not None else None,
        }
        out.append(item)
    return out


def log_list(
    state: ServingState,
    endpoint: str,
    items: list[Candidate],
    *,
    placement: str = "",
    customer_id: int | None = None,
    anchor_product_id: int | None = None,
    algorithm: str | None = None,
    variant: str = "",
    log: bool = True,
) -> str:
    """Record the served list and return its id (generated here, uuid4) for attribution.

    The row goes through :data:`LIST_LOG` (``shop_recs.platform.logbuffer``): INSERTed now, or buffered and
    written by the background flusher, per ``SERVING_LOG_BUFFER_ROWS``.
    """
    list_id = uuid.uuid4()
    if log:
        LIST_LOG.write(
            [
                state.store_id,
                list_id.hex if connection.vendor == "sqlite" else list_id,
                endpoint,
                placement[:64],
                customer_id,
                state.version_id,
                algorithm or state.algorithm,
                variant[:64],
                anchor_product_id,
                json.dumps([c.product_id for c in items]),
                connection.ops.adapt_datetimefield_value(timezone.now()),
            ]
        )
    return str(list_id)


#: The served-list log (``RecommendationList`` rows); search logs its result pages here too.
LIST_LOG = logbuffer.LogTable("recommendation list", serving_sql.insert_list_sql)


def finish(
    state: ServingState,
    endpoint: str,
    ranked: list[Candidate],
    offset: int,
    n: int,
    *,
    placement: str,
    customer_id: int | None = None,
    anchor_product_id: int | None = None,
    algorithm: str | None = None,
    scored: Scored | None = None,
    log: bool = True,
    model: Any = None,
    texts: ReasonTexts | None = None,
) -> ServeResult:
    page = ranked[offset : offset + n]
    if scored is not None:
        explain_reasons(state, scored, page, model=model)
    fill_simple_reasons(page, texts)
    list_id = log_list(
        state,
        endpoint,
        page,
        placement=placement,
        customer_id=customer_id,
        anchor_product_id=anchor_product_id,
        algorithm=algorithm,
        log=log,
    )
    return ServeResult(
        items=render_items(state.snap, page),
        list_id=list_id,
        model_version=state.version_id,
        algorithm=algorithm or state.algorithm,
        placement=placement,
        candidates=page,
        rules_placement=placement_served(state.store_id, placement),
    )
