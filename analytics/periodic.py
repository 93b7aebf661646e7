"""The periodic profile and segment refresh (the beat entry ``refresh-due-profiles``).

Every check (``PROFILE_REFRESH_CHECK_SECONDS``) starts a profile run, which also refreshes segment
memberships, for each store whose cadence has passed: ``StorePeriodicSettings.profile_refresh_hours``,
else ``PROFILE_REFRESH_HOURS`` (daily). A store is skipped while a run is queued or running, when its
latest run (of any outcome, so a failing store is retried once per cadence, not every check) is
younger than the cadence, and when no event arrived since its last successful run (profiles are
measured from the latest event, so they would not change).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone

from analytics.models import ProfileRun
from analytics.services import start_profile_run
from shop_recs.activity.models import Event
from shop_recs.platform.jobs import JobStatus
from shop_recs.platform.periodic import profile_refresh_interval, store_settings
from shop_recs.stores.models import Store
from shop_recs.stores.scoping import store_scope


def profile_refresh_mode(store: Store, now: datetime) -> str | None:
    """The mode of the run the store is due for (incremental after a first success), or ``None``."""
    interval = profile_refresh_interval(store_settings([store.pk]).get(store.pk))
    if interval is None:
        return None
    with store_scope(store):
        if ProfileRun.objects.filter(status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).exists():
            return None
        latest = ProfileRun.objects.order_by("-created_at", "-pk").first()
        if latest is not None and latest.created_at > now - interval:
            return None
        success = (
            ProfileRun.objects.filter(status=JobStatus.SUCCEEDED, max_event_id__isnull=False)
            .order_by("-max_event_id")
            .first()
        )
        new_events = Event.objects.all() if success is None else Event.objects.filter(pk__gt=success.max_event_id)
        if not new_events.exists():
            return None
    return ProfileRun.Mode.FULL if success is None else ProfileRun.Mode.INCREMENTAL


def refresh_due_profiles(now: datetime | None = None) -> dict[str, Any]:
    """Start a profile run (with segments) for every due store; figures per store."""
    now = now or timezone.now()
    per_store: dict[int, dict[str, int]] = {}
    for store in Store.objects.order_by("pk"):
        mode = profile_refresh_mode(store, now)
        if mode is None:
            continue
        run = start_profile_run(store, mode, user=None, segment=True)
        per_store[store.pk] = {"run": run.pk}
    return {"started": len(per_store), "per_store": per_store}
