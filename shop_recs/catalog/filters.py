"""Filters of ``GET /api/v1/products`` (django-filter; strict fields from ``shop_recs.api.filters``)."""

from __future__ import annotations

from decimal import Decimal

import django_filters
from django.db.models import Q, QuerySet

from shop_recs.api.filters import StrictBooleanFilter, StrictDateTimeFilter, StrictNumberFilter, StrictTextFilter
from shop_recs.catalog.models import CATEGORY_PATH_SEPARATOR, Product

# The price column's range (validation.py refuses anything else on the way in).
PRICE_MIN, PRICE_MAX = Decimal("0"), Decimal("9999999999.99")


class ProductFilter(django_filters.FilterSet):
    """The product list's filters; each refuses a value it cannot read (400 naming it and the value)."""

    category = StrictTextFilter(
        method="filter_category", help_text="Category path, e.g. `Home > Kitchen`; the subtree is included."
    )
    active = StrictBooleanFilter(field_name="is_active", help_text="`true`: active products only; `false`: inactive.")
    in_stock = StrictBooleanFilter(field_name="in_stock", help_text="`true`: in stock only; `false`: out of stock.")
    brand = StrictTextFilter(field_name="brand", help_text="Exact brand.")
    min_price = StrictNumberFilter(
        field_name="price",
        lookup_expr="gte",
        min_value=PRICE_MIN,
        max_value=PRICE_MAX,
        help_text="Price at least this (products without a price are left out).",
    )
    max_price = StrictNumberFilter(
        field_name="price",
        lookup_expr="lte",
        min_value=PRICE_MIN,
        max_value=PRICE_MAX,
        help_text="Price at most this (products without a price are left out).",
    )
    updated_since = StrictDateTimeFilter(
        field_name="updated_at",
        lookup_expr="gte",
        help_text="Changed at or after this ISO 8601 date or date-time (UTC when no offset): for incremental sync.",
    )

    class Meta:
        model = Product
        fields: list[str] = []  # every filter is declared above, with its strict field

    def filter_category(self, queryset: QuerySet[Product], name: str, value: str) -> QuerySet[Product]:
        # The path as the importers store it ("A > B"), whatever spacing the client used around ">".
        path = CATEGORY_PATH_SEPARATOR.join(part.strip() for part in value.split(">"))
        return queryset.filter(Q(category__path=path) | Q(category__path__startswith=path + CATEGORY_PATH_SEPARATOR))
