"""Admin of the platform: periodic run records (read-only, superusers) and per-store periodic settings."""

from __future__ import annotations

from django.contrib import admin

from shop_recs.platform.models import PeriodicRun, StorePeriodicSettings
from shop_recs.stores.admin_base import StoreScopedAdmin


@admin.register(PeriodicRun)
class PeriodicRunAdmin(admin.ModelAdmin):
    """Installation-wide figures span every store, so only superusers (the operators) see them."""

    list_display = ("name", "started_at", "finished_at", "outcome", "summary")
    list_filter = ("name", "outcome")
    readonly_fields = [f.name for f in PeriodicRun._meta.fields]

    def has_module_permission(self, request) -> bool:
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(StorePeriodicSettings)
class StorePeriodicSettingsAdmin(StoreScopedAdmin):
    list_display = ("store", "profile_refresh_hours", "attribution", "updated_at")
