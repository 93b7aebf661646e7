"""Settings read on the serving hot path, cached per process.

``django.conf.settings`` is a lazy object: every attribute read goes through
``LazySettings.__getattr__`` (~1 µs), and a recommendation request read a dozen of them. ``setting``
caches each value on first use; Django's ``setting_changed`` signal (sent by ``override_settings``
and by pytest-django's ``settings`` fixture) empties the cache, so tests that change a setting see it.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

_cache: dict[str, Any] = {}


def setting(name: str, default: Any) -> Any:
    """``getattr(settings, name, default)``, remembered (pass the same default everywhere)."""
    try:
        return _cache[name]
    except KeyError:
        value = _cache[name] = getattr(settings, name, default)
        return value


@receiver(setting_changed)
def _forget(**kwargs: Any) -> None:
    _cache.clear()
