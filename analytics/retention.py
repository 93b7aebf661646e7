"""Log retention, the beat entry ``purge-old-logs``: served lists, search queries and their attribution.

``LOG_RETENTION_DAYS`` (0, the default, keeps everything) bounds how long the per-request logs are
kept: ``RecommendationList`` (served lists), ``SearchQuery`` (search log) and the ``Attribution`` rows
credited to lists served before the cutoff. Lists and their attributions go together, by the time
the list was served, so online metrics and experiment results stay consistent (fewer days, same
rates). Lists of a *running* experiment are kept whatever their age, so its results never shrink
while it runs. It lives in analytics because only this layer may read all three apps' tables.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from analytics.experiments.models import Attribution
from shop_recs.search.models import SearchQuery
from shop_recs.serving.models import Experiment, ExperimentStatus, RecommendationList
from shop_recs.stores.models import Store
from shop_recs.stores.scoping import store_scope

#: Rows deleted per statement, so a large backlog never holds one long lock on a hot log table.
BATCH = 5_000


def _delete_in_batches(qs: QuerySet) -> int:
    total = 0
    while True:
        pks = list(qs.values_list("pk", flat=True)[:BATCH])
        if not pks:
            return total
        total += qs.model.objects.filter(pk__in=pks).delete()[0]


def purge_old_logs(now: datetime | None = None) -> dict[str, Any]:
    """Delete log rows older than ``LOG_RETENTION_DAYS`` in every store; figures per store."""
    days = settings.LOG_RETENTION_DAYS
    if days <= 0:
        return {"lists": 0, "searches": 0, "attributions": 0, "per_store": {}}
    cutoff = (now or timezone.now()) - timedelta(days=days)
    per_store: dict[int, dict[str, int]] = {}
    for store in Store.objects.order_by("pk"):
        with store_scope(store):
            running = [
                f"{exp_id}:{variant_id}"
                for exp_id, variant_id in Experiment.objects.filter(status=ExperimentStatus.RUNNING).values_list(
                    "pk", "variants__pk"
                )
                if variant_id is not None
            ]
            figures = {
                "attributions": _delete_in_batches(
                    Attribution.objects.filter(list_created_at__lt=cutoff).exclude(variant__in=running)
                ),
                "lists": _delete_in_batches(
                    RecommendationList.objects.filter(created_at__lt=cutoff).exclude(variant__in=running)
                ),
                "searches": _delete_in_batches(SearchQuery.objects.filter(created_at__lt=cutoff)),
            }
        if any(figures.values()):
            per_store[store.pk] = figures
    totals = {key: sum(f[key] for f in per_store.values()) for key in ("lists", "searches", "attributions")}
    return {**totals, "per_store": per_store}
