"""Admin base class: a non-superuser sees and edits only the stores they belong to."""

from __future__ import annotations

from django.contrib import admin

from shop_recs.stores.models import Membership, Role
from shop_recs.stores.scoping import store_scope, unscoped


def member_store_ids(user, *, merchant: bool = False) -> list[int]:
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
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

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
