"""Keep the cyclic garbage collector's full passes off the serving path.

A web worker holds a few hundred thousand long-lived objects (Django, the loaded models, catalog
snapshots, search indexes, cached customers). CPython's full (generation 2) collection walks all of
them: measured 100-125 ms per pass on the demo store, several times a minute under load, each one
stalling every request queued on that worker. That pause, not the average cost, set the p99.

After the worker's first ``SERVING_GC_FREEZE_AFTER`` hot-path requests (default 500: models,
snapshots and indexes are loaded by then), :func:`note_request` runs one full collection and then
``gc.freeze()``: everything alive is moved to the permanent generation, which later collections
skip. Frozen objects are still freed by reference counting when the last reference goes (a replaced
snapshot is); only reference *cycles* among them would outlive their use, and the serving state
holds none. A pass then walks only what was created since (measured: max 1.7 ms instead of 125 ms).
"""

from __future__ import annotations

import gc
import logging
import os

from shop_recs.conf import setting

logger = logging.getLogger(__name__)

_served = 0
_frozen_pid = 0


def note_request() -> None:
    """Count one hot-path request; freeze the heap once per process after the warm-up."""
    global _served, _frozen_pid
    if _frozen_pid == os.getpid():
        return
    _served += 1
    after = int(setting("SERVING_GC_FREEZE_AFTER", 500))
    if after <= 0 or _served < after:
        return
    _frozen_pid = os.getpid()
    gc.collect()
    gc.freeze()
    logger.info("froze %s long-lived objects after %s requests (gc.freeze)", gc.get_freeze_count(), _served)
