"""Cache calls that survive a cache outage.

Django's ``RedisCache`` raises on connection errors (it does not swallow them the way the memcached
backends do). Everything the cache holds in shop_recs can be recomputed or is also held in process
memory, so a Redis outage must cost speed, never availability: these helpers log the error (at most
once per ``_LOG_EVERY`` seconds, so an outage does not flood the log) and behave like a cache miss
(``cache_get`` returns ``default``) or a no-op (``cache_set``/``cache_delete``). The socket timeouts
in ``CACHES["default"]["OPTIONS"]`` keep each failed call short.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from django.core.cache import caches

logger = logging.getLogger(__name__)

#: Seconds between two logged cache errors (the first one is always logged).
_LOG_EVERY = 30.0
_last_logged = 0.0
_lock = threading.Lock()


def _log_failure(op: str, key: str, exc: BaseException) -> None:
    global _last_logged
    now = time.monotonic()
    with _lock:
        if _last_logged and now - _last_logged < _LOG_EVERY:
            return
        _last_logged = now
    logger.warning("cache %s %r failed (%s: %s); continuing without the cache", op, key, type(exc).__name__, exc)


def cache_get(key: str, default: Any = None, *, alias: str = "default") -> Any:
    """``cache.get`` that returns ``default`` when the cache is unreachable."""
    try:
        return caches[alias].get(key, default)
    except Exception as exc:  # noqa: BLE001 - redis-py raises ConnectionError, TimeoutError, ...
        _log_failure("get", key, exc)
        return default


def cache_set(key: str, value: Any, timeout: float | None = None, *, alias: str = "default") -> bool:
    """``cache.set``; returns ``False`` (and logs) instead of raising when the cache is unreachable.

    ``timeout=None`` means "never expire", as in Django.
    """
    try:
        caches[alias].set(key, value, timeout=timeout)
    except Exception as exc:  # noqa: BLE001
        _log_failure("set", key, exc)
        return False
    return True


def cache_delete(key: str, *, alias: str = "default") -> bool:
    try:
        caches[alias].delete(key)
    except Exception as exc:  # noqa: BLE001
        _log_failure("delete", key, exc)
        return False
    return True


# --- the registry of in-process caches ---------------------------------------------------------------
#
# Serving keeps per-process state (the active model, catalog snapshots, rules, API keys, campaigns,
# ...). Each module that holds such a cache registers the one function that empties it, so there is a
# single answer to "what does this process remember, and how do I drop it": invalidate_process_caches().
# Tests call it around every test; writes that change what a cache holds call the module's own
# invalidation (or this one with the store id).

Invalidator = Callable[[int | None], None]
_process_caches: dict[str, Invalidator] = {}


def register_process_cache(name: str, invalidate: Invalidator) -> Invalidator:
    """Register ``invalidate(store_id | None)`` under ``name`` (``None`` empties every store). Returns it."""
    _process_caches[name] = invalidate
    return invalidate


def registered_process_caches() -> list[str]:
    """The names of the registered in-process caches, sorted."""
    return sorted(_process_caches)


def invalidate_process_caches(store_id: int | None = None) -> None:
    """Empty every registered in-process cache (for one store, or all of them)."""
    for invalidate in list(_process_caches.values()):
        invalidate(store_id)
