"""Admin registration: every model here is store-owned, so all use ``StoreScopedAdmin``."""

from __future__ import annotations

from django.contrib import admin

from analytics.experiments.models import Attribution, AttributionSettings
from shop_recs.serving.models import Experiment, Variant
from shop_recs.stores.admin_base import StoreScopedAdmin


class VariantInline(admin.TabularInline):
    model = Variant
    extra = 0
    fields = ("position", "name", "kind", "model_version", "algorithm", "rule_overrides", "traffic")


@admin.register(Experiment)
class ExperimentAdmin(StoreScopedAdmin):
    list_display = ("id", "store", "name", "placement", "status", "started_at", "stopped_at")
    list_filter = ("status",)
    inlines = [VariantInline]


@admin.register(AttributionSettings)
class AttributionSettingsAdmin(StoreScopedAdmin):
    list_display = ("store", "click_window_hours", "purchase_window_days", "last_event_id")


@admin.register(Attribution)
class AttributionAdmin(StoreScopedAdmin):
    list_display = ("event_id", "store", "event_type", "placement", "algorithm", "variant", "via", "timestamp")
    list_filter = ("event_type", "via")
