"""The one scoping mechanism every query for store data goes through.

Every store-owned model inherits :class:`StoreOwned`, whose default manager is a django-scopes
``ScopedManager``. A query on it outside an active store scope raises ``ScopeError`` instead of
returning every store's rows, and inside ``store_scope(store)`` it is filtered to that store
automatically. Forgetting the scope is therefore a loud error, not a silent data leak.

Where the scope is activated:

* REST API: ``StoreScopedAPIMixin`` (from the API key's store) — see ``shop_recs.api.scope``;
* dashboard: ``store_view`` / ``StoreViewMixin`` (from the URL's store and the user's membership);
* admin: ``StoreScopedAdmin`` (all stores the staff user belongs to);
* Celery tasks and management commands: ``with store_scope(store):`` explicitly.

``unscoped()`` exists for the few cross-store operations (migrations, fixtures, platform-wide
maintenance); grep for it in review.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from django.db import models
from django_scopes import ScopedManager, scope, scopes_disabled
from django_scopes.exceptions import ScopeError

if TYPE_CHECKING:
    from shop_recs.stores.models import Store

__all__ = ["ScopeError", "StoreOwned", "store_scope", "unscoped", "StoreScopedManager"]


def StoreScopedManager(manager_class: type[models.Manager] = models.Manager) -> models.Manager:  # noqa: N802
    """The default manager of every store-owned model: filtered by the active store scope."""
    return ScopedManager(store="store", _manager_class=manager_class)


@contextmanager
def store_scope(store: Store | int | Iterable[Store | int]) -> Iterator[None]:
    """Activate the scope of one store (or several, for a staff user's admin views)."""
    if isinstance(store, (list, tuple, set, frozenset)):
        value: object = [getattr(s, "pk", s) for s in store]
    else:
        value = store
    with scope(store=value):
        yield


@contextmanager
def unscoped() -> Iterator[None]:
    """Run queries across all stores. Only for platform maintenance, never for request handling."""
    with scopes_disabled():
        yield


class StoreOwned(models.Model):
    """Abstract base of every model that belongs to one store."""

    store = models.ForeignKey("stores.Store", on_delete=models.CASCADE, related_name="+")

    objects = StoreScopedManager()
    # Plain manager for Django internals (FK access, admin deletion collector) that must not be scoped.
    all_stores = models.Manager()  # noqa: DJ012 - a manager, not a field

    class Meta:
        abstract = True
        base_manager_name = "all_stores"
