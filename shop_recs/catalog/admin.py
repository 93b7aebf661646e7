"""Catalog admin: every row is store-owned, so both classes scope through ``StoreScopedAdmin``."""

from __future__ import annotations

from django.contrib import admin

from shop_recs.catalog.models import Category, Product
from shop_recs.stores.admin_base import StoreScopedAdmin


@admin.register(Category)
class CategoryAdmin(StoreScopedAdmin):
    list_display = ["path", "name", "store"]
    list_filter = [("store", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["path", "name"]
    list_select_related = ["store"]
    raw_id_fields = ["parent"]


@admin.register(Product)
class ProductAdmin(StoreScopedAdmin):
    list_display = ["sku", "title", "store", "category", "brand", "price", "currency", "is_active", "in_stock"]
    list_filter = [
        ("store", admin.RelatedOnlyFieldListFilter),
        "is_active",
        "in_stock",
        ("category", admin.RelatedOnlyFieldListFilter),
    ]
    search_fields = ["sku", "title", "brand"]
    list_select_related = ["store", "category"]
    raw_id_fields = ["category"]
    readonly_fields = ["created_at", "updated_at"]
    show_full_result_count = False
