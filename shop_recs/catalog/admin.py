"""Catalog admin: every row is store-owned, so both classes scope through ``StoreScopedAdmin``."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from shop_recs.catalog import validation as rules
from shop_recs.catalog.models import Category, Product
from shop_recs.stores.admin_base import StoreScopedAdmin


@admin.register(Category)
class CategoryAdmin(StoreScopedAdmin):
    list_display = ["path", "name", "store"]
    list_filter = [("store", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["path", "name"]
    list_select_related = ["store"]
    raw_id_fields = ["parent"]


class ProductAdminForm(forms.ModelForm):
    """The API's URL rule (http/https only, no control characters) for edits made in the admin too:
    Django's own URL field would also take ``ftp://``."""

    class Meta:
        model = Product
        # Only the checked fields here: the admin adds the rest per request, inside the store scope
        # ("__all__" would build the category choices now, outside any scope: a ScopeError).
        fields = ["image_url", "url"]

    def _clean_url_field(self, name: str) -> str:
        value = self.cleaned_data.get(name) or ""
        if problem := rules.url_problem(value):
            raise forms.ValidationError(problem)
        return value

    def clean_image_url(self) -> str:
        return self._clean_url_field("image_url")

    def clean_url(self) -> str:
        return self._clean_url_field("url")


@admin.register(Product)
class ProductAdmin(StoreScopedAdmin):
    form = ProductAdminForm
    list_display = ["sku", "title", "store", "category", "brand", "price", "currency", "is_active", "in_stock"]
    list_filter = [
        ("store", admin.RelatedOnlyFieldListFilter),
        "is_active",
        "in_stock",
        ("category", admin.RelatedOnlyFieldListFilter),
    ]
    search_fields = ["sku", "title", "brand"]
    fieldsets = [
        (None, {"fields": ["store", "sku", "title", "description", "category", "brand", "tags"]}),
        (_("Card"), {"fields": ["price", "currency", "image_url", "url", "in_stock", "is_active"]}),
        (None, {"fields": ["attributes", "created_at", "updated_at"]}),
    ]
    list_select_related = ["store", "category"]
    raw_id_fields = ["category"]
    readonly_fields = ["created_at", "updated_at"]
    show_full_result_count = False
