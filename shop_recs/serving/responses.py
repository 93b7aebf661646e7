"""Served lists: the page's ``Candidate`` objects, the response items and the list log.

:func:`finish` turns a ranked page into a :class:`ServeResult` (reasons filled, items rendered) and
records it through :data:`LIST_LOG` (``RecommendationList`` rows: INSERTed now, or buffered and
written by the background flusher, per ``SERVING_LOG_BUFFER_ROWS``).

:class:`CompactPage` is a served page as a cached customer keeps it (``services._page_key``): its
rendered JSON minus the product cards, which every customer shares (:func:`card_json`).
"""

from __future__ import annotations

import json
import struct
import uuid
from typing import Any

import numpy as np
import orjson
from django.db import connection
from django.utils import timezone

from shop_recs.platform import logbuffer
from shop_recs.serving import sql as serving_sql
from shop_recs.serving.reasons import ReasonTexts, explain_reasons, fill_simple_reasons
from shop_recs.serving.rules import Candidate, RankedPositions, placement_served
from shop_recs.serving.runtime import ServingState
from shop_recs.serving.scoring import Scored
from shop_recs.serving.snapshot import CatalogSnapshot, remember_derived


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


class ServeResult:
    """A served list: the items as plain dicts and what the log and the response carry.

    A page served from a cached customer's memo (:meth:`memoised`) carries its items as rendered JSON
    instead: :meth:`as_dict` hands that to orjson as an ``orjson.Fragment`` (the bytes go out as they
    are; the API renders with orjson, ``api.fastpath.json_response``), and ``items`` and
    ``candidates`` are decoded from it on first use (a candidate's score is then the rendered one,
    rounded to 6 decimals; product ids, codes and texts are exact).

    ``rules_placement`` is the placement whose rules served the list: ``placement`` itself, or the
    store's default placement when the request named none or one the store does not have.
    """

    __slots__ = (
        "_items",
        "list_id",
        "model_version",
        "algorithm",
        "placement",
        "_candidates",
        "rules_placement",
        "_json",
        "_product_ids",
        "_snap",
    )

    def __init__(
        self,
        items: list[dict[str, Any]] | None,
        list_id: str,
        model_version: int | None,
        algorithm: str,
        placement: str,
        candidates: list[Candidate] | None = None,
        rules_placement: str = "",
    ) -> None:
        self._items = items
        self.list_id = list_id
        self.model_version = model_version
        self.algorithm = algorithm
        self.placement = placement
        self._candidates = [] if candidates is None and items is not None else candidates
        self.rules_placement = rules_placement
        self._json: bytes | None = None
        self._product_ids: list[int] = []
        self._snap: CatalogSnapshot | None = None

    @classmethod
    def memoised(
        cls,
        page: CompactPage,
        snap: CatalogSnapshot,
        product_ids: list[int],
        list_id: str,
        model_version: int | None,
        algorithm: str,
        placement: str,
        rules_placement: str,
    ) -> ServeResult:
        """A page served again from its :class:`CompactPage` (of this snapshot)."""
        result = cls(None, list_id, model_version, algorithm, placement, None, rules_placement)
        result._json = page.render(snap)
        result._product_ids = product_ids
        result._snap = snap
        return result

    @property
    def items(self) -> list[dict[str, Any]]:
        if self._items is None:
            self._items = orjson.loads(self._json or b"[]")
        return self._items

    @items.setter
    def items(self, value: list[dict[str, Any]]) -> None:
        self._items, self._json = value, None

    @property
    def candidates(self) -> list[Candidate]:
        if self._candidates is None:
            sku_to_pk = self._snap.sku_to_pk if self._snap is not None else {}
            self._candidates = [
                Candidate(
                    pk,
                    item["score"],
                    item["reason"]["code"],
                    item["reason"]["text"],
                    sku_to_pk.get(item["reason"]["anchor_sku"]),
                )
                for pk, item in zip(self._product_ids, self.items, strict=True)
            ]
        return self._candidates

    @candidates.setter
    def candidates(self, value: list[Candidate]) -> None:
        self._candidates = value

    def as_dict(self) -> dict[str, Any]:
        # The rendered bytes while nobody has decoded (and so perhaps changed) the items.
        items = orjson.Fragment(self._json) if self._json is not None and self._items is None else self.items
        return {
            "list_id": self.list_id,
            "model_version": self.model_version,
            "algorithm": self.algorithm,
            "placement": self.placement,
            "rules_placement": self.rules_placement,
            "items": items,
        }


def card_json(snap: CatalogSnapshot, pos: int) -> bytes:
    """The JSON of product ``pos``'s card (``snap.items[pos]``, orjson) without its closing brace: an
    item's rendering starts with it. Built once per snapshot and product, shared by every customer."""
    cards = _cards(snap)
    card = cards.get(pos)
    if card is None:
        card = cards[pos] = orjson.dumps(snap.items[pos])[:-1]
    return card


def _cards(snap: CatalogSnapshot) -> dict[int, bytes]:
    # The snapshot's own cache of derived values: it lives exactly as long as the cards it renders. A
    # dict, not a list per position: a large catalog pays only for the products it serves.
    cards: dict[int, bytes] | None = snap._derived.get(_CARDS_KEY)
    if cards is None:
        cards = {}
        remember_derived(snap._derived, _CARDS_KEY, cards)
    return cards


_CARDS_KEY = ("serving.responses", "card_json")


class CompactPage:
    """A rendered page of items as a cached customer keeps it: what is personal in each item's JSON
    (its score and its reason), the cards left out (:func:`card_json`; every customer shares them).

    ``blob`` is one ``bytes``: a header ``<HH`` (``n`` items, ``m`` distinct reasons), ``n`` int32
    catalog positions and ``n`` reason indexes (a byte each; two from 256 items on),
    then NUL-separated text pieces (orjson never writes a raw NUL: control characters are escaped):
    ``n`` score literals, then the page's ``m`` distinct ``reason`` objects (items with the same
    anchor share one). Item ``i`` renders as ``card_json(pos[i]) + ',"score":' + score[i] +
    ',"reason":' + reason[index[i]] + '}'``, which is byte for byte what orjson makes of the item dict
    (``render_items``: the card's keys, then ``score``, then ``reason``). A page of ten took ~8 KB as
    item dicts and ``Candidate`` objects; this ~0.7 KB. Rendering it (~8 µs for ten items) costs about
    what ``render_items`` and encoding its dicts did.
    """

    __slots__ = ("blob",)

    def __init__(self, blob: bytes) -> None:
        self.blob = blob

    @classmethod
    def of(cls, snap: CatalogSnapshot, page: list[Candidate]) -> CompactPage:
        """A served page (reasons filled): the same score and reason values as :func:`render_items`."""
        n = len(page)
        if not n:
            return cls(_head_struct(0).pack(0, 0))
        index, skus = snap.index, snap.skus
        reasons: dict[tuple[str, str, str | None], int] = {}
        which: list[int] = []
        positions: list[int] = []
        for cand in page:
            positions.append(index[cand.product_id])
            anchor = cand.anchor_product_id
            at = index.get(int(anchor)) if anchor is not None else None
            key = (cand.reason_code, cand.reason_text, skus[at] if at is not None else None)
            which.append(reasons.setdefault(key, len(reasons)))
        # One encoding for all the scores (a number's literal never holds a comma), one per distinct reason.
        scores = orjson.dumps([round(float(cand.score), 6) for cand in page])[1:-1].split(b",")
        texts = [orjson.dumps({"code": c, "text": t, "anchor_sku": a}) for c, t, a in reasons]
        head = _head_struct(n).pack(n, len(reasons), *positions, *which)
        return cls(head + b"\x00".join([*scores, *texts]))

    def positions(self) -> np.ndarray:
        """The items' catalog positions (int32)."""
        n = _COUNTS.unpack_from(self.blob)[0]
        return np.frombuffer(self.blob, dtype=np.int32, count=n, offset=_COUNTS.size)

    def render(self, snap: CatalogSnapshot) -> bytes:
        """The page's items as JSON (the array), exactly as orjson renders ``render_items``' dicts."""
        blob = self.blob
        n = _COUNTS.unpack_from(blob)[0]
        if not n:
            return b"[]"
        head = _head_struct(n)
        values = head.unpack_from(blob)
        pieces = blob[head.size :].split(b"\x00")
        reasons = pieces[n:]
        cards = _cards(snap)
        parts: list[bytes] = []
        for pos, score, which in zip(values[2 : 2 + n], pieces, values[2 + n :], strict=False):
            card = cards.get(pos)
            if card is None:
                card = card_json(snap, pos)
            parts += (card, b',"score":', score, b',"reason":', reasons[which], b"},")
        parts[-1] = b"}"
        return b"[" + b"".join(parts) + b"]"


#: ``CompactPage``'s counts, and its whole header per page size (``struct`` compiles a format once).
_COUNTS = struct.Struct("<HH")
_HEADS: dict[int, struct.Struct] = {}


def _head_struct(n: int) -> struct.Struct:
    head = _HEADS.get(n)
    if head is None:
        head = _HEADS[n] = struct.Struct(f"<HH{n}i{n}{'B' if n < 256 else 'H'}")
    return head


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
    product_ids: list[int] | None = None,
) -> str:
    """Record the served list and return its id (generated here, uuid4) for attribution.

    The row goes through :data:`LIST_LOG` (``shop_recs.platform.logbuffer``): INSERTed now, or buffered and
    written by the background flusher, per ``SERVING_LOG_BUFFER_ROWS``. ``product_ids``: the list's
    products when the caller has no ``Candidate`` objects (a memoised page), instead of ``items``.
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
                json.dumps(product_ids if product_ids is not None else [c.product_id for c in items]),
                connection.ops.adapt_datetimefield_value(timezone.now()),
            ]
        )
    return str(list_id)


def serve_compact(
    state: ServingState,
    compact: CompactPage,
    *,
    placement: str,
    customer_id: int,
    algorithm: str | None,
    log: bool,
    page: list[Candidate] | None = None,
) -> ServeResult:
    """Log and answer a customer's page in its memo form: a repeat from the memo (``page`` ``None``:
    the product ids come from its positions) or a page just computed (``page``: its candidates, reasons
    filled). Both answer with the same bytes (:meth:`CompactPage.render`)."""
    snap = state.snap
    product_ids = [c.product_id for c in page] if page is not None else snap.pks[compact.positions()].tolist()
    list_id = log_list(
        state,
        "customer",
        [],
        placement=placement,
        customer_id=customer_id,
        algorithm=algorithm,
        log=log,
        product_ids=product_ids,
    )
    served = placement_served(state.store_id, placement)
    result = ServeResult.memoised(
        compact, snap, product_ids, list_id, state.version_id, algorithm or state.algorithm, placement, served
    )
    if page is not None:
        result.candidates = page
    return result


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
