"""The base every store API view inherits: it activates the caller's store scope.

DRF authenticates lazily inside ``initial()``, so the scope is entered there and left in
``finalize_response()``, which DRF calls on every path, including errors.
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

    def finalize_response(self, request, response, *args, **kwargs):
        try:
            return super().finalize_response(request, response, *args, **kwargs)
        finally:
            cm = getattr(self, "_store_scope", None)
            if cm is not None:
                self._store_scope = None
                cm.__exit__(None, None, None)
