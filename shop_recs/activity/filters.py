"""Filters of ``GET /api/v1/customers/{external_id}/events`` (strict fields: ``shop_recs.api.filters``)."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet

from shop_recs.activity.models import Event, EventType
from shop_recs.api.filters import StrictChoiceFilter, StrictDateTimeFilter, StrictIntegerFilter, StrictTextFilter

# Event ids are bigints; anything larger cannot name an event and would overflow the comparison.
EVENT_ID_MAX = 2**62


class CustomerEventFilter(django_filters.FilterSet):
    """A customer's events narrowed by type, product, time window and id (keyset paging with ``before``)."""

    type = StrictChoiceFilter(field_name="event_type", choices=EventType.choices, help_text="Only this event type.")
    sku = StrictTextFilter(field_name="product__sku", help_text="Only events of this product.")
    since = StrictDateTimeFilter(
        field_name="timestamp",
        lookup_expr="gte",
        help_text="Events at or after this ISO 8601 date or date-time (UTC when no offset).",
    )
    until = StrictDateTimeFilter(
        field_name="timestamp",
        lookup_expr="lt",
        help_text="Events before this ISO 8601 date or date-time (exclusive: `since=2025-03-01&until=2025-03-02` "
        "is one day).",
    )
    before = StrictIntegerFilter(
        method="filter_before",
        min_value=0,
        max_value=EVENT_ID_MAX,
        help_text="Only events with a smaller id: the smallest id of the previous page (0: no bound).",
    )

    class Meta:
        model = Event
        fields: list[str] = []  # every filter is declared above, with its strict field

    def filter_before(self, queryset: QuerySet[Event], name: str, value: int) -> QuerySet[Event]:
        # 0 meant "from the newest" before the filters were strict; clients may still send it.
        return queryset.filter(pk__lt=value) if value else queryset
