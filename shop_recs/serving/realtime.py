"""Real-time signals: the customer's latest events, read at request time in one query.

Events received after the active model was trained change the next answer at once, without
retraining: serving builds the customer's history row from these events (the artifact holds no
interaction matrix; models fold the row in, see ``FactorRecommender.fold_in``), and blends in the
neighbours of the latest few products (:func:`neighbour_scores`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from django.db import connection

from shop_recs.activity.changes import KIND_CODE, KINDS, OTHER_KIND
from shop_recs.serving import sql as serving_sql
from shop_recs.training.matrix import DEFAULT_EVENT_WEIGHTS

#: How many latest events make the request-time history (served by the (customer, -timestamp) index).
RECENT_EVENTS = 50
#: Purchased products read for the "exclude purchased" rule (distinct products, newest irrelevant).
MAX_PURCHASED = 2000
#: How many of the latest distinct products contribute their neighbours, and their recency decay.
NEIGHBOUR_ANCHORS = 5
NEIGHBOUR_DECAY = 0.7
#: A cell's cap, as in training (MatrixConfig.max_cell_value).
MAX_CELL = 20.0


#: A cached customer keeps their events as one numpy record array, not as tuples (50 events: ~0.9 KB
#: instead of ~5 KB): product pk, time (microseconds since the epoch; 0 when the read did not say) and
#: the type's code (``changes.KINDS``; unknown types carry no weight, like an unknown type in training).
EVENT_DTYPE = np.dtype([("product", "<i8"), ("us", "<i8"), ("kind", "i1")])
_NO_EVENTS = np.zeros(0, dtype=EVENT_DTYPE)
_KIND_WEIGHT: tuple[float, ...] = tuple(DEFAULT_EVENT_WEIGHTS.get(kind, 0.0) for kind in KINDS)
_PURCHASE = KIND_CODE["purchase"]
#: ``Activity._event_weights``: product pk and its summed weight. float32 holds every weight exactly:
#: they are sums of ``DEFAULT_EVENT_WEIGHTS`` (whole numbers) capped at :data:`MAX_CELL`, and every
#: consumer (``history_row``, ``scoring.fast_score``) turns them into float32 anyway.
_WEIGHTED_DTYPE = np.dtype([("pk", "<i8"), ("w", "<f4")])


class Activity:
    """The customer's latest product events (newest first) and every product they bought.

    Never changed after it is built: a new event makes a new ``Activity`` (:meth:`with_events`), so a
    request holding the old one is not disturbed and the cached ones serve many requests. The events
    are one numpy record array (:data:`EVENT_DTYPE`): ~1 KB for 50, where tuples took ~5 KB.
    """

    __slots__ = ("rows", "purchased", "_weighted")

    def __init__(self, rows: np.ndarray | None = None, purchased: set[int] | None = None) -> None:
        self.rows: np.ndarray = _NO_EVENTS if rows is None else rows
        self.purchased: set[int] = set() if purchased is None else purchased
        #: The events' weighted products and their summed weights, as one small record array computed on
        #: first use (:data:`_WEIGHTED_DTYPE`): kept as a dict of Python ints and floats they took ~2.7 KB
        #: per cached customer (more than the events); as two arrays ~0.7 KB, as one ~0.45 KB; a dict is
        #: rebuilt from it in ~3 µs (the loop: ~16 µs).
        self._weighted: np.ndarray | None = None

    @property
    def events(self) -> list[tuple[int, str]]:
        """``(product pk, event type)`` newest first (for tests and debugging; serving reads the arrays)."""
        return [(pk, KINDS[k]) for pk, k in zip(self.rows["product"].tolist(), self.rows["kind"].tolist(), strict=True)]

    @property
    def recent_products(self) -> list[int]:
        """Distinct products of the latest events that carry weight, newest first."""
        return self._event_weights()["pk"].tolist()

    def weights(self) -> dict[int, float]:
        """Product pk -> summed event weight (capped), like a training matrix cell."""
        weighted = self._event_weights()
        out = dict(zip(weighted["pk"].tolist(), weighted["w"].tolist(), strict=True))
        for pk in self.purchased:
            # A purchase older than the latest events still belongs to the history.
            out.setdefault(pk, DEFAULT_EVENT_WEIGHTS["purchase"])
        return out

    def _event_weights(self) -> np.ndarray:
        """The weighted products of the latest events in first-seen order (newest first), summed and capped."""
        if self._weighted is None:
            out: dict[int, float] = {}
            kind_weight = _KIND_WEIGHT
            for pk, k in zip(self.rows["product"].tolist(), self.rows["kind"].tolist(), strict=True):
                w = kind_weight[k]
                if w > 0:
                    out[pk] = min(MAX_CELL, out.get(pk, 0.0) + w)
            weighted = np.empty(len(out), dtype=_WEIGHTED_DTYPE)
            weighted["pk"] = list(out)
            weighted["w"] = list(out.values())
            self._weighted = weighted
        return self._weighted

    def with_events(self, events: list[tuple[int, int, int]]) -> Activity | None:
        """This activity plus ``events`` (``(product pk, type code, microseconds)``): what a read after
        their commit returns. ``None`` when that cannot be known exactly from what is held here (the
        purchases were read truncated at :data:`MAX_PURCHASED`): the caller then reads again."""
        if len(self.purchased) >= MAX_PURCHASED:
            return None
        new = np.array([(pk, us, code) for pk, code, us in events], dtype=EVENT_DTYPE)
        # New events first among equal times (the database orders ties arbitrarily), newest first,
        # then the latest RECENT_EVENTS: the read's ORDER BY timestamp DESC LIMIT.
        rows = np.concatenate([new, self.rows])
        rows = rows[np.argsort(-rows["us"], kind="stable")][:RECENT_EVENTS]
        purchased = self.purchased
        bought = [pk for pk, code, _us in events if code == _PURCHASE]
        if bought:
            purchased = purchased | set(bought)
        return Activity(np.ascontiguousarray(rows), purchased)


def _activity(events: list[tuple[int, str, int]], purchased: set[int]) -> Activity:
    """From read rows ``(product pk, type, microseconds)``, newest first (the read's ORDER BY; sorted
    here only if not, e.g. rows read without times keep their order)."""
    rows = np.empty(len(events), dtype=EVENT_DTYPE)
    if events:
        products, kinds, times = zip(*events, strict=True)
        rows["product"] = products
        rows["us"] = times
        rows["kind"] = [KIND_CODE.get(kind, OTHER_KIND) for kind in kinds]
        us = rows["us"]
        if (us[:-1] < us[1:]).any():
            rows = rows[np.argsort(-us, kind="stable")]
    return Activity(rows, purchased)


def recent_activity(store_id: int, customer_id: int) -> Activity:
    """One query: the latest ``RECENT_EVENTS`` product events UNION the distinct purchased products.

    The SQL is ``serving.sql.recent_activity_rows``.
    """
    events: list[tuple[int, str, int]] = []
    purchased: set[int] = set()
    for product_id, kind, part in serving_sql.recent_activity_rows(store_id, customer_id, RECENT_EVENTS, MAX_PURCHASED):
        if part:
            purchased.add(int(product_id))
        else:
            events.append((int(product_id), kind, 0))
    return _activity(events, purchased)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The PostgreSQL snapshot a read was made in (``pg_current_snapshot()``): which transactions'
    rows it saw. A written event carries its transaction id, so a cached entry can tell whether its read
    already holds that event (append nothing) or not (append it): exact with any message delay."""

    xmin: int
    xmax: int
    in_progress: tuple[int, ...]  # a tuple, not a set: usually empty (the shared ``()``), at most a few ids

    @classmethod
    def parse(cls, text: str) -> Snapshot:
        xmin, xmax, xip = text.split(":")
        return cls(int(xmin), int(xmax), tuple(int(x) for x in xip.split(",") if x))

    def saw(self, xid: int) -> bool:
        """Whether a transaction committed with ``xid`` was visible to this snapshot."""
        return xid < self.xmin or (xid < self.xmax and xid not in self.in_progress)


#: At most this many write-through messages applied to one cached entry; then it is read again (the
#: applied ids must stay a short tuple, and a read every 64 events costs nothing).
MAX_APPLIED = 64


@dataclass(slots=True)
class ServingCustomer:
    """A customer as the serving hot path needs it: pk, country and, already read, their activity.

    ``recommend_for_customer`` accepts it wherever it accepts a ``Customer`` (it reads ``pk`` and
    ``country``) and uses ``activity`` instead of querying again.
    """

    pk: int
    country: str
    activity: Activity
    #: What serving derived from this activity (its personal candidates per serving state); lives
    #: and dies with the cached entry (``live_activity``), so it never outlives an activity change.
    memo: dict[str, Any] = field(default_factory=dict)
    #: The read's snapshot (PostgreSQL; ``None`` elsewhere: such an entry is dropped on a change).
    snapshot: Snapshot | None = None
    #: Ids of the write-through messages already applied (``live_activity``), so a message that
    #: reaches this process twice (its own write, then the same message from Redis) counts once.
    applied: tuple[str, ...] = ()

    def with_events(self, message_id: str, xid: int, events: list[tuple[int, int, int]]) -> ServingCustomer | None:
        """The entry after a committed write of ``events`` (transaction ``xid``): itself when it already
        holds them, a new entry (empty memo) when not, ``None`` when that cannot be told exactly."""
        if message_id in self.applied:
            return self
        if self.snapshot is None or len(self.applied) >= MAX_APPLIED:
            return None
        if self.snapshot.saw(xid):
            return self
        activity = self.activity.with_events(events)
        if activity is None:
            return None
        return ServingCustomer(self.pk, self.country, activity, {}, self.snapshot, (*self.applied, message_id))


def customer_activity(store_id: int, external_id: str) -> tuple[ServingCustomer | None, int]:
    """One round trip: the customer (by external id), their :func:`recent_activity`, and the store's
    active model version id (0 when none). Returns ``(customer or None, active version id)``.

    Same rows as ``Customer.objects.filter(external_id=...)`` + ``recent_activity`` + the active
    ``ModelVersion`` lookup, which were three queries on every recommendation request. The store id
    is in every WHERE clause (raw SQL bypasses django-scopes). On PostgreSQL the same round trip also
    returns each event's time and the read's snapshot, for write-through (``live_activity``).
    """
    events: list[tuple[int, str, int]] = []
    purchased: set[int] = set()
    customer_pk: int | None = None
    country = ""
    active = 0
    snapshot = None
    if connection.vendor == "postgresql":
        rows = serving_sql.customer_activity_rows_pg(store_id, external_id, RECENT_EVENTS, MAX_PURCHASED)
    else:
        rows = [
            (*row, 0) for row in serving_sql.customer_activity_rows(store_id, external_id, RECENT_EVENTS, MAX_PURCHASED)
        ]
    for part, value, text, us in rows:
        if part == 0:
            events.append((int(value), text, us or 0))
        elif part == 1:
            purchased.add(int(value))
        elif part == 2:
            customer_pk, country = int(value), text or ""
        elif part == 4:
            snapshot = Snapshot.parse(text)
        else:
            active = int(value)
    if customer_pk is None:
        return None, active
    # Interned: a handful of country codes shared by every cached customer, not one string each.
    country = sys.intern(country)
    return ServingCustomer(customer_pk, country, _activity(events, purchased), snapshot=snapshot), active


def history_row(weights: dict[int, float], column_of: dict[int, int], n_items: int) -> sp.csr_matrix:
    """The 1 x n_items row of the products the model knows (others are ignored here)."""
    cols, vals = [], []
    for pk, w in weights.items():
        col = column_of.get(pk)
        if col is not None:
            cols.append(col)
            vals.append(w)
    order = np.argsort(cols)
    return sp.csr_matrix(
        (np.asarray(vals, dtype=np.float32)[order], np.asarray(cols, dtype=np.int32)[order], [0, len(cols)]),
        shape=(1, n_items),
    )


def minmax(scores: np.ndarray) -> np.ndarray:
    """Scale finite scores to 0..1 (non-finite -> 0), so parts of a blend are comparable."""
    s = np.asarray(scores, dtype=np.float32)
    finite = np.isfinite(s)
    if not finite.any():
        return np.zeros_like(s)
    lo, hi = float(s[finite].min()), float(s[finite].max())
    out = np.zeros_like(s)
    if hi > lo:
        out[finite] = (s[finite] - lo) / (hi - lo)
    elif hi > 0:
        out[finite] = 1.0
    return out


def neighbour_scores(sim_rows: np.ndarray) -> np.ndarray:
    """Recency-weighted sum of the (row-normalised) similarity rows of the latest products."""
    if len(sim_rows) == 0:
        return np.zeros(0, dtype=np.float32)
    out = np.zeros(sim_rows.shape[1], dtype=np.float32)
    for rank, row in enumerate(sim_rows[:NEIGHBOUR_ANCHORS]):
        out += (NEIGHBOUR_DECAY**rank) * minmax(row)
    return out
