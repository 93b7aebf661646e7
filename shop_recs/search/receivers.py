"""What search does when activity forgets or merges customers (``activity.erasure``'s signals,
connected in ``apps.py``): the search log rows of the customer and of their anonymous sessions.

The per-store search index holds the catalog only, nothing about customers: no cache to drop.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q

from shop_recs.search.models import SearchQuery
from shop_recs.stores.models import Store


def erase_customer_rows(
    sender: Any, store: Store, customer: Any, session_ids: Any, report: Any, dry_run: bool = False, **kwargs: Any
) -> None:
    """``customer_erasing``: delete (or count) the customer's queries and the anonymous ones of their sessions."""
    rows = SearchQuery.objects.filter(
        Q(customer_id=customer.pk) | Q(customer__isnull=True, session_id__in=list(session_ids))
    )
    report.add(SearchQuery, rows.count() if dry_run else rows.delete()[0])


def merge_customer_rows(
    sender: Any, store: Store, target: Any, source: Any, session_id: str, report: Any, **kwargs: Any
) -> None:
    """``customers_merging``: the duplicate's queries and the anonymous session's become the target's."""
    which = Q(customer__isnull=True, session_id=session_id)
    if source is not None:
        which |= Q(customer_id=source.pk)
    report.add(SearchQuery, SearchQuery.objects.filter(which).update(customer_id=target.pk))
