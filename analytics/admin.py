from __future__ import annotations

from django.contrib import admin

from analytics.forms import PrivacyForm
from analytics.models import (
    CustomerProfile,
    DPRelease,
    ProfileRun,
    Segment,
    SegmentExport,
    StoreAnalyticsSettings,
)
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
    list_display = ("store", "dp_epsilon", "dp_budget", "dp_budget_window_days", "min_cell_size", "segment_k")
    # The dashboard's checks (a positive ε, budget and clip; a window of at least a day) hold here too.
    form = PrivacyForm
    # The noise key is not editable (editable=False) and so never shown.
    fields = (
        "store",
        "dp_epsilon",
        "dp_budget",
        "dp_budget_window_days",
        "min_cell_size",
        "revenue_clip",
        "segment_k",
        "segmentation",
    )


@admin.register(DPRelease)
class DPReleaseAdmin(StoreScopedAdmin):
    """The privacy ledger: readable by the store's members, never edited by anyone (it is the audit)."""

    list_display = ("created_at", "store", "kind", "subject", "epsilon", "cell_epsilon", "cells", "user")
    list_filter = ("kind",)
    readonly_fields = (
        "store",
        "kind",
        "subject",
        "data_version",
        "epsilon",
        "cell_epsilon",
        "cells",
        "values",
        "user",
        "created_at",
    )

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
