"""Platform models: the record of every periodic (beat) run, and a store's periodic-job settings.

:class:`PeriodicRun` rows are written by the Celery signal receivers in ``platform.periodic`` around
each task named in ``CELERY_BEAT_SCHEDULE``, so the Jobs page can say when each job last ran, what it
did and whether it is overdue, and an operator can see it in the admin without reading worker logs.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from shop_recs.stores.scoping import StoreOwned


class PeriodicOutcome(models.TextChoices):
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")


class PeriodicRun(models.Model):
    """One run of a periodic task: its beat entry, start and end, outcome, what it did, the error.

    Not store-owned: one run serves every store. ``counts`` holds the installation-wide figures (for
    the operator); ``per_store`` maps a store id to that store's own figures, the only part a store's
    Jobs page shows, so no store learns anything about another.
    """

    name = models.CharField(_("job"), max_length=64)
    task = models.CharField(_("task"), max_length=200)
    task_id = models.CharField(_("task id"), max_length=64, blank=True, default="")
    started_at = models.DateTimeField(_("started"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    outcome = models.CharField(
        _("outcome"), max_length=16, choices=PeriodicOutcome.choices, default=PeriodicOutcome.RUNNING
    )
    counts = models.JSONField(_("figures"), default=dict, blank=True)
    per_store = models.JSONField(_("figures per store"), default=dict, blank=True)
    summary = models.CharField(_("summary"), max_length=500, blank=True, default="")
    error = models.TextField(_("error"), blank=True, default="")

    class Meta:
        ordering = ["-started_at", "-pk"]
        verbose_name = _("periodic run")
        verbose_name_plural = _("periodic runs")
        indexes = [models.Index(fields=["name", "-started_at"], name="periodicrun_name_started_idx")]

    def __str__(self) -> str:
        return f"{self.name} {self.started_at:%Y-%m-%d %H:%M:%S} ({self.outcome})"

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class StorePeriodicSettings(StoreOwned):
    """A store's own cadence of the periodic jobs that run per store.

    Empty fields fall back to the installation defaults (``PROFILE_REFRESH_HOURS``); 0 switches the
    job off for this store. Edited in the admin (merchants of the store).
    """

    profile_refresh_hours = models.PositiveIntegerField(
        _("refresh profiles and segments every (hours)"),
        null=True,
        blank=True,
        help_text=_("Empty: the installation default (daily). 0: never refresh automatically."),
    )
    attribution = models.BooleanField(
        _("attribute clicks and purchases automatically"),
        default=True,
        help_text=_("Off: experiment results and online metrics only move when attribution is run by hand."),
    )
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("periodic job settings")
        verbose_name_plural = _("periodic job settings")
        constraints = [models.UniqueConstraint(fields=["store"], name="periodicsettings_store_unique")]

    def __str__(self) -> str:
        return f"periodic settings #{self.store_id}"
