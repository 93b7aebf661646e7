from __future__ import annotations

from django.contrib import admin

from shop_recs.search.models import SearchQuery
from shop_recs.stores.admin_base import StoreScopedAdmin


@admin.register(SearchQuery)
class SearchQueryAdmin(StoreScopedAdmin):
    list_display = ("query", "store", "n_results", "corrected_query", "customer", "created_at")
    list_filter = ("store",)
    search_fields = ("query", "normalized_query")
    date_hierarchy = "created_at"
    raw_id_fields = ("customer",)
    readonly_fields = ("created_at",)
