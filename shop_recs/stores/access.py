"""Dashboard access: resolve the store in the URL, check membership and role, activate the scope.

Dashboard URLs carry the store slug (``/s/<store_slug>/...``), so links are bookmarkable and the
store switcher is just a link. A user who is not a member of that store gets a 404, not a 403, so
the existence of other stores is not revealed.
"""

from __future__ import annotations

from functools import wraps

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest
from django.utils import translation

from shop_recs.stores.models import Membership, Role
from shop_recs.stores.scoping import store_scope


def _use_store_language(request: HttpRequest, store) -> None:
    """The store's language, for members who have not chosen one with the language switch (whose
    cookie LocaleMiddleware has already applied); a blank store language leaves the browser's."""
    if store.language and settings.LANGUAGE_COOKIE_NAME not in request.COOKIES:
        translation.activate(store.language)
        request.LANGUAGE_CODE = translation.get_language()


def resolve_membership(request: HttpRequest, store_slug: str) -> Membership:
    memberships = list(Membership.objects.filter(user=request.user).select_related("store").order_by("store__name"))
    for membership in memberships:
        if membership.store.slug == store_slug:
            request.store = membership.store
            request.membership = membership
            request.user_memberships = memberships
            _use_store_language(request, membership.store)
            return membership
    raise Http404("No such store")


def store_view(view=None, *, merchant_only: bool = False):
    """Decorate a function view taking ``store_slug``: membership check plus an active store scope.

    ``merchant_only`` refuses analysts with 403 (they may read and analyse, but not change the
    catalog, rules, campaigns or keys).
    """

    def decorator(func):
        @login_required
        @wraps(func)
        def wrapper(request, store_slug: str, *args, **kwargs):
            membership = resolve_membership(request, store_slug)
            if merchant_only and membership.role != Role.MERCHANT:
                raise PermissionDenied("Only merchants can do this.")
            with store_scope(membership.store):
                return func(request, *args, **kwargs)

        return wrapper

    if view is not None:
        return decorator(view)
    return decorator


def require_merchant(request: HttpRequest) -> None:
    """For views that read for everyone but write only for merchants (check inside POST branches)."""
    membership = getattr(request, "membership", None)
    if membership is None or membership.role != Role.MERCHANT:
        raise PermissionDenied("Only merchants can do this.")
