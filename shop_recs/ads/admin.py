from __future__ import annotations

from django.contrib import admin

from shop_recs.ads.models import Campaign, DailyCap, Impression
from shop_recs.stores.admin_base import StoreScopedAdmin


@admin.register(Campaign)
class CampaignAdmin(StoreScopedAdmin):
    list_display = (
        "name",
        "store",
        "status",
        "starts_at",
        "ends_at",
        "pricing_model",
        "bid",
        "budget",
        "spend",
        "weight",
    )
    list_filter = ("status",)
    search_fields = ("name", "title")
    raw_id_fields = ("products", "categories", "segments", "created_by")
    # The counters are written only by the charging UPDATEs (shop_recs/ads/sql.py).
    readonly_fields = ("impressions_served", "spend_micros", "spend_day", "day_spend_micros")


@admin.register(Impression)
class ImpressionAdmin(StoreScopedAdmin):
    list_display = ("impression_id", "store", "campaign", "customer", "slot", "served_at", "clicked_at")
    list_select_related = ("campaign", "store", "customer")
    raw_id_fields = ("campaign", "customer")
    readonly_fields = ("impression_id", "cost_micros")


@admin.register(DailyCap)
class DailyCapAdmin(StoreScopedAdmin):
    list_display = ("campaign", "customer", "day", "count", "store")
    raw_id_fields = ("campaign", "customer")
