"""The base every store API view inherits: it activates the caller's store scope.

DRF authenticates lazily inside ``initial()``, so the scope is entered there. It is left in
``dispatch()``'s ``finally``: ``finalize_response()`` is skipped when an unhandled exception escapes
``handle_exception()`` (the JSON 500 path), and a scope left open there stayed active in the worker
thread's context, so the next request on that thread started inside another store's scope.
"""

from __future__ import annotations

from rest_framework.request import Request

from shop_recs.api.auth import StoreClient
from shop_recs.stores.models import Store
from shop_recs.stores.scoping import store_scope


class StoreScopedAPIMixin:
    """Mix into any DRF view: ``self.store`` is the caller's store and every query is scoped to it."""

    store: Store

    def initial(self, request: Request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authenticates and checks permissions
        client = request.user
        if isinstance(client, StoreClient):
            self.store = client.store
            self._store_scope = store_scope(client.store)
            self._store_scope.__enter__()

    def dispatch(self, request, *args, **kwargs):
        try:
            return super().dispatch(request, *args, **kwargs)
        finally:
            cm = getattr(self, "_store_scope", None)
            if cm is not None:
                self._store_scope = None
                cm.__exit__(None, None, None)
