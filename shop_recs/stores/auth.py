"""REST API authentication by store API key, and the permission classes built on it."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from shop_recs.stores.models import ApiKey, Store

# Writing last_used_at on every request would make every read a write; once a minute is enough.
_LAST_USED_RESOLUTION = timedelta(minutes=1)


class StoreClient:
    """The principal of an API request: a shop frontend acting as one store, not a Django user."""

    is_authenticated = True
    is_anonymous = False
    is_staff = False
    is_superuser = False

    def __init__(self, store: Store, api_key: ApiKey):
        self.store = store
        self.api_key = api_key
        self.pk = None

    def __str__(self) -> str:
        return f"api:{self.store.slug}:{self.api_key.prefix}"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer sr_<prefix>_<secret>`` (``X-Api-Key`` is accepted too)."""

    keyword = "Bearer"

    def authenticate(self, request):
        raw = self._raw_key(request)
        if raw is None:
            return None
        prefix = ApiKey.prefix_of(raw)
        if prefix is None:
            raise exceptions.AuthenticationFailed(_("Malformed API key."))
        key = ApiKey.objects.select_related("store").filter(prefix=prefix).first()
        if key is None or not key.matches(raw):
            raise exceptions.AuthenticationFailed(_("Invalid API key."))
        if not key.is_active:
            raise exceptions.AuthenticationFailed(_("This API key has been revoked."))
        now = timezone.now()
        if key.last_used_at is None or now - key.last_used_at > _LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        return StoreClient(key.store, key), key

    def authenticate_header(self, request) -> str:
        return self.keyword

    def _raw_key(self, request) -> str | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if header:
            parts = header.split()
            if len(parts) != 2 or parts[0] != self.keyword:
                raise exceptions.AuthenticationFailed(_("Use 'Authorization: Bearer <API key>'."))
            return parts[1]
        return request.META.get("HTTP_X_API_KEY") or None


class HasStoreApiKey(permissions.BasePermission):
    """Allows only requests authenticated by a live store API key."""

    def has_permission(self, request, view) -> bool:
        return isinstance(request.user, StoreClient)


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "shop_recs.stores.auth.ApiKeyAuthentication"
    name = "StoreApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "A store API key (sr_…)."}
