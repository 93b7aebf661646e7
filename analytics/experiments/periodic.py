"""The periodic attribution of every store (the beat entry ``attribute-events``).

Attribution is incremental (by event id, see ``services.attribute_events``), so running it every few
minutes costs little; a store can switch it off (``StorePeriodicSettings.attribution``).
"""

from __future__ import annotations

import logging
from typing import Any

from analytics.experiments.services import attribute_events
from shop_recs.platform.periodic import attribution_enabled, store_settings
from shop_recs.stores.models import Store

logger = logging.getLogger(__name__)


class AttributionError(RuntimeError):
    """Some stores could not be attributed; the others were (their work is committed)."""


def attribute_all_stores() -> dict[str, Any]:
    """Attribute every store's new events; figures per store. One broken store does not stop the others,
    but it fails the run (raised at the end) so the Jobs page and the logs show it."""
    stores = list(Store.objects.order_by("pk"))
    settings_rows = store_settings([s.pk for s in stores])
    events = handled = 0
    failed: list[int] = []
    per_store: dict[int, dict[str, int]] = {}
    for store in stores:
        if not attribution_enabled(settings_rows.get(store.pk)):
            continue
        try:
            written = attribute_events(store)
        except Exception:  # noqa: BLE001 - one store's failure must not keep the others unattributed
            logger.exception("store %s: attribution failed", store.pk)
            failed.append(store.pk)
            continue
        handled += 1
        events += written
        per_store[store.pk] = {"events": written}
    if failed:
        raise AttributionError(f"attribution failed for store ids {failed}; {events} events attributed in the others")
    return {"events": events, "stores": handled, "per_store": per_store}
