"""The rules snapshot: each placement's ``StoreRules`` row as an immutable ``Rules`` value, cached
per store and process (one query loads every placement of a store).

``serving.rules`` re-exports all of this (``from shop_recs.serving.rules import Rules, load_rules``
stays the public interface); it lives here so the rules' data and cache read apart from the array
code that applies them.

Freshness: saving or deleting a ``StoreRules`` row or a ``Placement`` drops this process's entry of
the store at once; other processes (and bulk writes, which send no signals) pick changes up within
``SERVING_RULES_TTL`` seconds (default 30).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from django.conf import settings

from shop_recs.platform.cache import register_process_cache
from shop_recs.serving.models import DEFAULT_PLACEMENT_KEY, Placement, StoreRules
from shop_recs.serving.snapshot import DB_UNREACHABLE, OUTAGE_RETRY_SECONDS
from shop_recs.stores.scoping import store_scope

if TYPE_CHECKING:
    from shop_recs.stores.models import Store


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


@dataclass(frozen=True)
class PlacementRules:
    """Every placement's rules of one store, as one cache entry (one query loads them all)."""

    default_key: str = DEFAULT_PLACEMENT_KEY
    default: Rules = field(default_factory=Rules)
    by_key: dict[str, Rules] = field(default_factory=dict)
    #: Placement key -> the algorithm of the active run it serves (only placements that chose one).
    algorithms: dict[str, str] = field(default_factory=dict)

    def rules_for(self, placement: str) -> Rules:
        """The placement's rules; the default placement's for "" or a key the store does not have."""
        if not placement:
            return self.default
        return self.by_key.get(placement, self.default)

    def key_for(self, placement: str) -> str:
        """The key of the placement whose rules serve ``placement`` (the default's when unknown)."""
        return placement if placement and placement in self.by_key else self.default_key

    def algorithm_for(self, placement: str) -> str:
        """The algorithm the placement serves ("" for the live model's), the default's when unknown."""
        return self.algorithms.get(self.key_for(placement), "")


_rules_cache: dict[int, tuple[float, PlacementRules]] = {}
_lock = threading.Lock()
logger = logging.getLogger(__name__)


#: A whole number as the JSON id columns may hold it ("12", 12, "-3"). Not ``str.isdigit``: it accepts
#: "²" and, after ``lstrip("-")``, "--2", and ``int()`` of either raised while loading the rules.
_INTEGER = re.compile(r"-?[0-9]+")


def _int_set(values: Any) -> frozenset[int]:
    return frozenset(int(v) for v in (values or []) if _INTEGER.fullmatch(str(v)))


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


def _load_placement_rules(store_id: int) -> PlacementRules:
    """One query: the store's placements with their rules rows (a placement without one: defaults)."""
    with store_scope(store_id):
        placements = list(Placement.objects.filter(store_id=store_id).select_related("rules"))
        by_key: dict[str, Rules] = {}
        algorithms: dict[str, str] = {}
        default_key, default = DEFAULT_PLACEMENT_KEY, None
        for placement in placements:
            row = getattr(placement, "rules", None)  # the reverse one-to-one raises when absent
            rules = rules_from_row(row)
            by_key[placement.key] = rules
            if placement.algorithm:
                algorithms[placement.key] = placement.algorithm
            if placement.is_default:
                default_key, default = placement.key, rules
        if default is None:
            # No default placement row (a store made without the post_save signal, e.g. a raw
            # fixture): a rules row saved before placements still applies store-wide.
            default = rules_from_row(StoreRules.objects.filter(store_id=store_id, placement__isnull=True).first())
            by_key.setdefault(default_key, default)
    return PlacementRules(default_key, default, by_key, algorithms)


def placement_rules(store: Store | int) -> PlacementRules:
    """Every placement's rules of the store, from this process's cache (TTL ``SERVING_RULES_TTL``,
    dropped when a rules row or a placement of this process is saved or deleted).

    While the database is unreachable the expired entry is kept (``snapshot.DB_UNREACHABLE``)."""
    store_id = int(getattr(store, "pk", store))
    now = time.monotonic()
    hit = _rules_cache.get(store_id)
    ttl = float(settings.SERVING_RULES_TTL)
    if hit is not None and now - hit[0] < ttl:
        return hit[1]
    try:
        loaded = _load_placement_rules(store_id)
    except DB_UNREACHABLE:
        if hit is None:
            raise
        # The database is down: keep the rules we have, and look again after a short back-off.
        with _lock:
            _rules_cache[store_id] = (now - ttl + OUTAGE_RETRY_SECONDS, hit[1])
        logger.warning("database unreachable: serving store %s's rules as they were", store_id)
        return hit[1]
    with _lock:
        _rules_cache[store_id] = (now, loaded)
    return loaded


def load_rules(store: Store | int, placement: str = "") -> Rules:
    """The rules of the store's ``placement`` (its default placement's for "" or an unknown key).

    Cached per process with every other placement of the store (:func:`placement_rules`); the same
    ``Rules`` object comes back until the entry expires or is dropped."""
    return placement_rules(store).rules_for(placement)


def placement_served(store: Store | int, placement: str) -> str:
    """The key of the placement whose rules serve a request naming ``placement``."""
    return placement_rules(store).key_for(placement)


def invalidate_rules(store_id: int | None = None) -> None:
    with _lock:
        if store_id is None:
            _rules_cache.clear()
        else:
            _rules_cache.pop(int(store_id), None)


register_process_cache("serving.rules", invalidate_rules)
