"""The polled job row every long-running task writes to (the NetBox ``core.Job`` pattern).

A Celery task loads its row, records status, stage, progress, per-stage timings, a heartbeat and the
error there, and the dashboard polls the row — never Celery's result store. Training runs, profile
runs, evaluation runs and tuning jobs all inherit :class:`JobRun`.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from shop_recs.stores.scoping import StoreOwned


class JobStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")


FINISHED_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED)


class JobRun(StoreOwned):
    """Columns shared by every polled job row: status, progress, timings, heartbeat and error."""

    status = models.CharField(_("status"), max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    stage = models.CharField(_("stage"), max_length=64, blank=True, default="")
    progress = models.PositiveSmallIntegerField(_("progress (%)"), default=0)
    timings = models.JSONField(_("seconds per stage"), default=dict, blank=True)
    error = models.TextField(_("error"), blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    # Bumped on every progress write; a "running" row whose heartbeat is old lost its worker.
    heartbeat_at = models.DateTimeField(_("last heartbeat"), null=True, blank=True)

    class Meta(StoreOwned.Meta):
        abstract = True

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None
