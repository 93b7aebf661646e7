"""Online metrics per placement: a filter for the online-metrics chart and table, and a breakdown.

Served lists log the placement the shop asked for (``RecommendationList.placement``): "" when it
named none, and keys the store may not have (yet). Serving gives those the default placement's
rules, so here they count for the default placement too; a placement created later keeps the lists
logged under its key before it existed (they were served by the default placement's rules then).

Pure functions over :func:`analytics.experiments.selectors.online_metrics`' answer: no query.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

#: Below this many impressions a placement's rates are shown as "not enough data yet": one click
#: more or less would move its CTR by a whole percentage point or more.
MIN_IMPRESSIONS = 100

_COUNTS = ("impressions", "lists", "clicks", "carts", "purchases", "revenue")


def served_by(logged: str, keys: list[str]) -> str:
    """The key of the placement whose rules served a list logged under ``logged`` (``keys``: the
    store's placement keys, the default first)."""
    return logged if logged and logged in keys else keys[0]


def filter_placement(online: dict[str, Any], placement: str, keys: list[str]) -> dict[str, Any]:
    """``online`` keeping only the lists the placement ``placement`` served."""
    return {
        name: [row for row in rows if served_by(row["placement"], keys) == placement]
        for name, rows in online.items()
        if name in ("daily", "totals")
    }


@dataclass
class PlacementMetrics:
    key: str
    name: str
    impressions: int = 0
    lists: int = 0
    clicks: int = 0
    carts: int = 0
    purchases: int = 0
    revenue: float = 0.0

    @property
    def enough(self) -> bool:
        return self.impressions >= MIN_IMPRESSIONS

    def _rate(self, count: float) -> float:
        return count / self.impressions if self.impressions else 0.0

    @property
    def ctr(self) -> float:
        return self._rate(self.clicks)

    @property
    def cart_rate(self) -> float:
        return self._rate(self.carts)

    @property
    def conversion_rate(self) -> float:
        return self._rate(self.purchases)

    @property
    def rpm(self) -> float:
        return 1000 * self._rate(self.revenue)


def placement_breakdown(online: dict[str, Any], choices: list[tuple[str, str]]) -> list[PlacementMetrics]:
    """One row per placement of the store (``choices``: (key, name), the default first), in that
    order, summing the totals of every version and algorithm that served it."""
    keys = [key for key, _name in choices]
    sums: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(_COUNTS, 0))
    for row in online["totals"]:
        acc = sums[served_by(row["placement"], keys)]
        for name in _COUNTS:
            acc[name] += row.get(name, 0)
    out = []
    for key, name in choices:
        acc = sums.get(key, {})
        out.append(
            PlacementMetrics(
                key,
                name,
                **{c: int(acc.get(c, 0)) for c in _COUNTS if c != "revenue"},
                revenue=float(acc.get("revenue", 0.0)),
            )
        )
    return out
