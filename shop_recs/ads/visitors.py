"""Known customers' ad targeting, remembered per process: their segments and today's impressions.

An ad request for a known customer needs the profile's segments (``segment_ids`` plus
``auto_segment``) to pick the targeted campaigns. Reading them took a database round trip per
request (``sql.visitor_rows``), as many as the charge itself. They change only when profiles or
segments are rebuilt (the profile and segment jobs, a rule segment's edit, an erasure or merge), so
each process keeps what it read for ``ADS_VISITOR_CACHE_TTL`` seconds (default 60; ``0`` reads on
every request):

* **Targeting staleness is bounded by the TTL.** After a rebuild a customer may see, for at most the
  TTL, an ad aimed at a segment they just left, or miss one aimed at a segment they just joined. A
  deleted segment cannot widen an audience: its campaigns are paused first (``segment_guard``) and
  the campaign snapshot drops within ``ADS_CAMPAIGN_CACHE_TTL``. Saves and deletions of profiles
  and segments made through the ORM in this process drop the entries at once (``connect_signals``).
* **The frequency cap stays exact without reading it.** The charging statement enforces the cap on
  the (campaign, customer, day) row, whatever this process believes. The counters kept here are only
  a pre-filter that spares a refused charge: loaded with the segments, then raised by every charge
  and cap refusal of this process. They never exceed the row's count (other processes only add to
  it), so the pre-filter can skip a campaign only when the database would refuse it too; a cap it
  does not know about costs one refused charge (which then records the cap here).

Exactness of budgets, pacing and caps is unchanged: it is the charging statement's (``sql.py``).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from django.conf import settings
from django.db.models.signals import post_delete, post_save

from shop_recs.activity import changes
from shop_recs.ads import sql
from shop_recs.platform.cache import register_process_cache

#: Entries kept per process; when full, the oldest half goes (a bound on memory, ~200 bytes each).
MAX_ENTRIES = 100_000


@dataclass
class Targeting:
    """One known customer's segments and this process's lower bound of their impressions today."""

    loaded: float
    segment_ids: frozenset[int]
    day: date
    #: Campaign id -> impressions today, never above the database's count (module docstring).
    shown_today: dict[int, int] = field(default_factory=dict)

    def for_day(self, day: date) -> dict[int, int]:
        """Today's counters; a new UTC day starts from zero, as the counter rows do."""
        if self.day != day:
            self.day, self.shown_today = day, {}
        return self.shown_today


_entries: dict[tuple[int, int], Targeting] = {}
_lock = threading.Lock()


def ttl() -> float:
    return float(settings.ADS_VISITOR_CACHE_TTL)


def json_list(value: Any) -> list:
    """A jsonb list as Python: it arrives as text through Django's psycopg loader and SQLite alike; a
    driver may decode it."""
    if isinstance(value, str):
        return json.loads(value or "[]")
    return list(value or [])


def read(store_id: int, customer_pk: int, day: date) -> Targeting:
    """The customer's targeting from the database (one round trip: ``sql.visitor_rows``)."""
    ids: set[int] = set()
    shown: dict[int, int] = {}
    for part, seg_ids, auto_id, campaign_id, count in sql.visitor_rows(store_id, customer_pk, day):
        if part == 0:
            ids.update(int(x) for x in json_list(seg_ids))
            if auto_id:
                ids.add(int(auto_id))
        else:
            shown[int(campaign_id)] = int(count)
    return Targeting(time.monotonic(), frozenset(ids), day, shown)


def targeting(store_id: int, customer_pk: int, day: date) -> Targeting:
    """The customer's targeting: this process's entry while younger than the TTL, else read and kept."""
    key = (store_id, customer_pk)
    limit = ttl()
    hit = _entries.get(key)
    if hit is not None and time.monotonic() - hit.loaded < limit:
        hit.for_day(day)
        return hit
    entry = read(store_id, customer_pk, day)
    if limit > 0:
        with _lock:
            if len(_entries) >= MAX_ENTRIES:
                for old in list(_entries)[: MAX_ENTRIES // 2]:  # dicts keep insertion order: oldest first
                    del _entries[old]
            _entries[key] = entry
    return entry


def note_served(store_id: int, customer_pk: int, campaign_id: int, day: date) -> None:
    """A charge of this process counted one more impression on the customer's cap row."""
    entry = _entries.get((store_id, customer_pk))
    if entry is not None:
        shown = entry.for_day(day)
        shown[campaign_id] = shown.get(campaign_id, 0) + 1


def note_capped(store_id: int, customer_pk: int, campaign_id: int, cap: int, day: date) -> None:
    """The database refused a charge for the customer's cap: the row holds at least ``cap`` today."""
    entry = _entries.get((store_id, customer_pk))
    if entry is not None:
        shown = entry.for_day(day)
        shown[campaign_id] = max(shown.get(campaign_id, 0), cap)


def invalidate(store_id: int | None = None, customer_pks: Any = None) -> None:
    """Forget every store's entries, one store's, or some of its customers'."""
    with _lock:
        if store_id is None:
            _entries.clear()
        elif customer_pks is None:
            for key in [k for k in _entries if k[0] == store_id]:
                del _entries[key]
        else:
            for pk in customer_pks:
                _entries.pop((store_id, pk), None)


register_process_cache("ads.visitors", invalidate)


def _profile_changed(sender: Any, instance: Any = None, **kwargs: Any) -> None:
    invalidate(instance.store_id, [instance.customer_id])


def _segment_changed(sender: Any, instance: Any = None, **kwargs: Any) -> None:
    # A segment's save follows a membership refresh (rule segments) or a rebuild (automatic ones).
    invalidate(instance.store_id)


def _customers_changed(store_id: int, customer_ids: frozenset[int] | None) -> None:
    # Deletions and merges in this process (activity.changes' local listeners).
    invalidate(store_id, customer_ids)


def connect_signals() -> None:
    """Drop entries on this process's ORM writes of profiles and segments (lazy model names: the ads
    package never imports analytics) and on its customer changes."""
    for name, signal in (("saved", post_save), ("deleted", post_delete)):
        signal.connect(_profile_changed, sender="analytics.CustomerProfile", dispatch_uid=f"ads_visitor_profile_{name}")
        signal.connect(_segment_changed, sender="analytics.Segment", dispatch_uid=f"ads_visitor_segment_{name}")
    changes.add_listener(_customers_changed)
