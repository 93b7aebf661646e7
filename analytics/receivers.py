"""What analytics does when activity forgets, merges customers or deletes events (``activity.erasure``'s
signals, connected in ``apps.py``): the customer's profile (which carries their segment
memberships, ``auto_segment`` and ``segment_ids``) and the attributions of their events.

Aggregates already computed stay as they are (segment sizes and summaries, evaluation metrics, the
attribution watermark): docs/privacy.md lists them. A profile that no longer matches its events
(after a merge or a deletion of bad events) is deleted rather than kept stale; the next profile
refresh computes it again (an incremental run profiles every customer that has none).
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q

from analytics.experiments.models import Attribution
from analytics.models import CustomerProfile
from shop_recs.activity.models import Event
from shop_recs.stores.models import Store


def _anonymous_event_ids(session_ids: Any) -> list[int]:
    ids = Event.objects.filter(customer__isnull=True, session_id__in=list(session_ids)).values_list("pk", flat=True)
    return list(ids)


def erase_customer_rows(
    sender: Any, store: Store, customer: Any, session_ids: Any, report: Any, dry_run: bool = False, **kwargs: Any
) -> None:
    """``customer_erasing``: delete (or count) the profile and every attribution of the customer's
    events, their anonymous sessions' included."""
    profiles = CustomerProfile.objects.filter(customer_id=customer.pk)
    attributions = Attribution.objects.filter(
        Q(customer_id=customer.pk) | Q(event_id__in=_anonymous_event_ids(session_ids))
    )
    for model, rows in ((CustomerProfile, profiles), (Attribution, attributions)):
        report.add(model, rows.count() if dry_run else rows.delete()[0])


def merge_customer_rows(
    sender: Any, store: Store, target: Any, source: Any, session_id: str, report: Any, **kwargs: Any
) -> None:
    """``customers_merging``: attributions follow the events to the target; both profiles are
    dropped (the target's no longer describes its events) and recomputed by the next refresh."""
    anonymous = _anonymous_event_ids([session_id])
    if source is None and not anonymous:
        # Nothing to fold in (already merged, or an unknown id): change nothing, so a retry is a no-op.
        report.add(Attribution, 0)
        report.add(CustomerProfile, 0)
        return
    which = Q(event_id__in=anonymous)
    if source is not None:
        which |= Q(customer_id=source.pk)
    report.add(Attribution, Attribution.objects.filter(which).update(customer_id=target.pk))
    pks = [target.pk] + ([source.pk] if source is not None else [])
    report.add(CustomerProfile, CustomerProfile.objects.filter(customer_id__in=pks).delete()[0])


def delete_event_rows(sender: Any, store: Store, customer: Any, event_ids: Any, report: Any, **kwargs: Any) -> None:
    """``events_deleting``: the attributions of those events go (a bad purchase must not count as
    revenue), and the customer's profile, computed from them, is dropped until the next refresh."""
    report.add(Attribution, Attribution.objects.filter(event_id__in=list(event_ids)).delete()[0])
    report.add(CustomerProfile, CustomerProfile.objects.filter(customer_id=customer.pk).delete()[0])
