"""Precomputed Overview pages (the dashboard's landing page)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from shop_recs.stores.scoping import StoreOwned


class OverviewSnapshot(StoreOwned):
    """The Overview of one store for one period, as computed at ``computed_at``.

    Computing it aggregates every event of the period (distinct customers, funnel actors, top products),
    which is seconds on a large store; the landing page reads this row instead. ``source_max_event_id``
    is the highest event id of the whole installation when it was computed, so "has the store had events
    since?" is one primary-key range probe (``shop_recs.dashboard.overview_snapshots``).
    """

    period_key = models.CharField(_("period"), max_length=8)
    payload = models.JSONField(_("overview"))
    source_max_event_id = models.BigIntegerField(default=0)
    computed_at = models.DateTimeField(_("computed"), default=timezone.now)
    compute_seconds = models.FloatField(default=0.0)

    class Meta:
        verbose_name = _("overview snapshot")
        verbose_name_plural = _("overview snapshots")
        constraints = [
            models.UniqueConstraint(fields=["store", "period_key"], name="overviewsnapshot_store_period_unique")
        ]

    def __str__(self) -> str:
        return f"{self.store_id}/{self.period_key} @ {self.computed_at:%Y-%m-%d %H:%M}"
