"""Admin base class: a non-superuser sees and edits only the stores they belong to."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import get_user_model

from shop_recs.stores.models import Membership, Role
from shop_recs.stores.scoping import store_scope, unscoped


def colleagues(user):
    """The users who share at least one store with ``user`` (themselves included)."""
    return get_user_model().objects.filter(memberships__store_id__in=member_store_ids(user)).distinct()


def member_store_ids(user, *, merchant: bool = False) -> list[int]:
    if not getattr(user, "is_authenticated", False):
        # The admin asks every ModelAdmin for permissions while rendering its login page, as the
        # anonymous user: no stores (filtering memberships by AnonymousUser was a TypeError, a 500).
        return []
    qs = Membership.objects.filter(user=user)
    if merchant:
        qs = qs.filter(role=Role.MERCHANT)
    return list(qs.values_list("store_id", flat=True))


class StoreScopedAdmin(admin.ModelAdmin):
    """For every ``StoreOwned`` model. Analysts may view; only merchants may add, change, delete."""

    def changeform_view(self, request, *args, **kwargs):
        with self._scope(request):
            return super().changeform_view(request, *args, **kwargs)

    def changelist_view(self, request, *args, **kwargs):
        with self._scope(request):
            return super().changelist_view(request, *args, **kwargs)

    def delete_view(self, request, *args, **kwargs):
        with self._scope(request):
            return super().delete_view(request, *args, **kwargs)

    def history_view(self, request, *args, **kwargs):
        with self._scope(request):
            return super().history_view(request, *args, **kwargs)

    def get_queryset(self, request):
        # The base manager with an explicit store filter, not the scoped default manager: Django's
        # site-wide autocomplete view (/admin/autocomplete/) queries every registered admin outside
        # the scope the views above enter, and a scoped query there was a ScopeError (a 500).
        qs = self.model._base_manager.get_queryset()
        if not request.user.is_superuser:
            qs = qs.filter(store_id__in=member_store_ids(request.user))
        ordering = self.get_ordering(request)
        return qs.order_by(*ordering) if ordering else qs

    def _scope(self, request):
        if request.user.is_superuser:
            # all stores: a superuser administers the whole platform, not one store.
            return unscoped()
        return store_scope(member_store_ids(request.user))

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "store" and not request.user.is_superuser:
            # Kept next to its only use; models is already imported above, this is no cycle.
            from shop_recs.stores.models import Store

            kwargs["queryset"] = Store.objects.filter(pk__in=member_store_ids(request.user, merchant=True))
        elif db_field.related_model is get_user_model() and not request.user.is_superuser:
            # created_by / user dropdowns: only people of the member's own stores, never the whole
            # installation's user list (it named other tenants' staff).
            kwargs["queryset"] = colleagues(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_list_filter(self, request):
        # A plain "store" filter lists every store of the installation; this one lists only the stores
        # that appear in the (scoped) changelist.
        return [
            ("store", admin.RelatedOnlyFieldListFilter) if name == "store" else name
            for name in super().get_list_filter(request)
        ]

    def _is_merchant_for(self, request, obj) -> bool:
        if request.user.is_superuser:
            return True
        merchant_ids = member_store_ids(request.user, merchant=True)
        if obj is None:
            return bool(merchant_ids)
        return obj.store_id in merchant_ids

    def has_view_permission(self, request, obj=None) -> bool:
        if request.user.is_superuser:
            return True
        ids = member_store_ids(request.user)
        return bool(ids) and (obj is None or obj.store_id in ids)

    def has_module_permission(self, request) -> bool:
        return self.has_view_permission(request)

    def has_add_permission(self, request) -> bool:
        return self._is_merchant_for(request, None)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._is_merchant_for(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self._is_merchant_for(request, obj)
