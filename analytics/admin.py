from __future__ import annotations

from django.contrib import admin

from analytics.models import CustomerProfile, ProfileRun, Segment, SegmentExport, StoreAnalyticsSettings
from shop_recs.stores.admin_base import StoreScopedAdmin


@admin.register(CustomerProfile)
class CustomerProfileAdmin(StoreScopedAdmin):
    list_display = ("customer", "store", "frequency", "monetary", "r_score", "f_score", "m_score", "churn_risk")
    list_select_related = ("customer", "store")
    raw_id_fields = ("customer", "run", "auto_segment")


@admin.register(ProfileRun)
class ProfileRunAdmin(StoreScopedAdmin):
    list_display = ("pk", "store", "mode", "status", "progress", "n_customers", "created_at")
    list_filter = ("status", "mode")


@admin.register(Segment)
class SegmentAdmin(StoreScopedAdmin):
    list_display = ("name", "store", "kind", "size", "updated_at")
    list_filter = ("kind",)


@admin.register(SegmentExport)
class SegmentExportAdmin(StoreScopedAdmin):
    list_display = ("segment_name", "store", "user", "row_count", "created_at")


@admin.register(StoreAnalyticsSettings)
class StoreAnalyticsSettingsAdmin(StoreScopedAdmin):
    list_display = ("store", "dp_epsilon", "min_cell_size", "segment_k")
