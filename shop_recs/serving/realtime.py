"""Real-time signals: the customer's latest events, read at request time in one query.

Events received after the active model was trained change the next answer at once, without
retraining: serving builds the customer's history row from these events (the artifact holds no
interaction matrix; models fold the row in, see ``FactorRecommender.fold_in``), and blends in the
neighbours of the latest few products (:func:`neighbour_scores`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

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


@dataclass
class Activity:
    """The customer's latest product events (newest first) and every product they bought."""

    events: list[tuple[int, str]] = field(default_factory=list)  # (product pk, event type)
    purchased: set[int] = field(default_factory=set)
    #: ``weights()``/``recent_products`` computed once: an Activity is never changed after it is read
    #: (a change makes a new one), and the cached ones serve many requests.
    _weights: dict[int, float] | None = field(default=None, repr=False, compare=False)
    _recent: list[int] | None = field(default=None, repr=False, compare=False)

    @property
    def recent_products(self) -> list[int]:
        """Distinct products of the latest events that carry weight, newest first."""
        if self._recent is None:
            seen: dict[int, None] = {}
            for pk, kind in self.events:
                if DEFAULT_EVENT_WEIGHTS.get(kind, 0.0) > 0:
                    seen.setdefault(pk, None)
            self._recent = list(seen)
        return self._recent

    def weights(self) -> dict[int, float]:
        """Product pk -> summed event weight (capped), like a training matrix cell."""
        if self._weights is None:
            self._weights = self._compute_weights()
        return self._weights

    def _compute_weights(self) -> dict[int, float]:
        out: dict[int, float] = {}
        for pk, kind in self.events:
            w = DEFAULT_EVENT_WEIGHTS.get(kind, 0.0)
            if w > 0:
                out[pk] = min(MAX_CELL, out.get(pk, 0.0) + w)
        for pk in self.purchased:
            # A purchase older than the latest events still belongs to the history.
            out.setdefault(pk, DEFAULT_EVENT_WEIGHTS["purchase"])
        return out


def recent_activity(store_id: int, customer_id: int) -> Activity:
    """One query: the latest ``RECENT_EVENTS`` product events UNION the distinct purchased products.

    The SQL is ``serving.sql.recent_activity_rows``.
    """
    activity = Activity()
    for product_id, kind, part in serving_sql.recent_activity_rows(store_id, customer_id, RECENT_EVENTS, MAX_PURCHASED):
        if part:
            activity.purchased.add(int(product_id))
        else:
            activity.events.append((int(product_id), kind))
    return activity


@dataclass
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


def customer_activity(store_id: int, external_id: str) -> tuple[ServingCustomer | None, int]:
    """One round trip: the customer (by external id), their :func:`recent_activity`, and the store's
    active model version id (0 when none). Returns ``(customer or None, active version id)``.

    Same rows as ``Customer.objects.filter(external_id=...)`` + ``recent_activity`` + the active
    ``ModelVersion`` lookup, which were three queries on every recommendation request. The store id
    is in every WHERE clause (raw SQL bypasses django-scopes).
    """
    activity = Activity()
    customer_pk: int | None = None
    country = ""
    active = 0
    for part, value, text in serving_sql.customer_activity_rows(store_id, external_id, RECENT_EVENTS, MAX_PURCHASED):
        if part == 0:
            activity.events.append((int(value), text))
        elif part == 1:
            activity.purchased.add(int(value))
        elif part == 2:
            customer_pk, country = int(value), text or ""
        else:
            active = int(value)
    if customer_pk is None:
        return None, active
    return ServingCustomer(customer_pk, country, activity), active


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
