"""Dashboard and admin pages for a signed-in user are never stored by a browser or a shared cache.

They carry store data (customers, revenue, segments); a proxy or the browser's back button after sign
out must not serve them again. The API and static files are left alone: the API authenticates per
request with a key, and static files want long caching.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils.cache import add_never_cache_headers

_SKIP_PREFIXES = ("/api/", "/static/")
#: Set (to True) on a response built without the database (the dashboard's 500 and 503 pages): it is
#: never-cached already, and looking up the user would need the database that just failed.
NO_DATABASE_ATTR = "shop_recs_no_database"


class PrivatePagesMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if getattr(response, NO_DATABASE_ATTR, False):
            return response
        if request.path.startswith(_SKIP_PREFIXES):
            return response  # before the user: for the API there is none to load
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            add_never_cache_headers(response)  # Cache-Control: max-age=0, no-cache, no-store, must-revalidate, private
        return response
