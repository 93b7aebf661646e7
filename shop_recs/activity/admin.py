"""Activity admin. Events can number in the millions: no full counts, raw-id widgets, date drill-down."""

from __future__ import annotations

from django.contrib import admin

from shop_recs.activity.models import Customer, ErasureRecord, Event
from shop_recs.api.models import IdempotencyRecord
from shop_recs.stores.admin_base import StoreScopedAdmin


@admin.register(Customer)
class CustomerAdmin(StoreScopedAdmin):
    list_display = ["external_id", "store", "country", "age_band", "gender", "signup_date", "created_at"]
    list_filter = [("store", admin.RelatedOnlyFieldListFilter), "age_band", "gender"]
    search_fields = ["external_id", "country"]
    list_select_related = ["store"]
    readonly_fields = ["created_at"]
    show_full_result_count = False


@admin.register(Event)
class EventAdmin(StoreScopedAdmin):
    list_display = ["timestamp", "event_type", "store", "customer", "session_id", "product", "value", "quantity"]
    list_filter = [("store", admin.RelatedOnlyFieldListFilter), "event_type"]
    search_fields = ["customer__external_id", "product__sku", "session_id", "order_id"]
    list_select_related = ["store", "customer", "product"]
    raw_id_fields = ["customer", "product"]
    date_hierarchy = "timestamp"
    readonly_fields = ["received_at"]
    show_full_result_count = False


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(StoreScopedAdmin):
    list_display = ["key", "endpoint", "store", "response_status", "created_at"]
    list_filter = [("store", admin.RelatedOnlyFieldListFilter), "endpoint"]
    search_fields = ["key"]
    list_select_related = ["store"]
    date_hierarchy = "created_at"
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False  # written only by the API

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ErasureRecord)
class ErasureRecordAdmin(StoreScopedAdmin):
    """The erasure audit trail: read-only, written only by ``activity.erasure``."""

    list_display = ["created_at", "kind", "via", "store", "user", "api_key", "total_rows"]
    list_filter = [("store", admin.RelatedOnlyFieldListFilter), "kind", "via"]
    list_select_related = ["store", "user", "api_key"]
    readonly_fields = ["store", "kind", "via", "user", "api_key", "row_counts", "created_at"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # an audit trail nobody can edit
