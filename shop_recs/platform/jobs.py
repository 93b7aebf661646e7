"""The polled job row every long-running task writes to (the NetBox ``core.Job`` pattern).

A Celery task loads its row, records status, stage, progress, per-stage timings, a heartbeat and the
error there, and the dashboard polls the row — never Celery's result store. Training runs, profile
runs, evaluation runs and tuning jobs all inherit :class:`JobRun`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

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

    def status_payload(self) -> dict[str, Any]:
        """What a page polls while the job works: plain JSON from the row, no Celery result store."""
        return {
            "id": self.pk,
            "status": self.status,
            "status_label": str(self.get_status_display()),
            "stage": self.stage,
            "progress": self.progress,
            "finished": self.is_finished,
            "error": self.error.splitlines()[0] if self.error else "",
            "timings": self.timings,
        }


class JobProgress:
    """Records stage, percent, per-stage seconds and a heartbeat on a job row.

    Each call is one single-row UPDATE outside any transaction, so the polling page sees it at once.
    """

    def __init__(self, row: JobRun, on_progress: Callable[[str, int], None] | None = None) -> None:
        self.model, self.pk, self.on_progress = type(row), row.pk, on_progress
        self.timings: dict[str, float] = {}
        self._stage, self._t0 = "", 0.0

    def stage(self, name: str, percent: float) -> None:
        self._close()
        self._stage, self._t0 = name, time.perf_counter()
        self.update(percent)

    def update(self, percent: float) -> None:
        self.model.all_stores.filter(pk=self.pk).update(
            stage=self._stage[:64],
            progress=max(0, min(100, int(percent))),
            heartbeat_at=timezone.now(),
            timings=self.timings,
        )
        if self.on_progress is not None:
            self.on_progress(self._stage, int(percent))

    def _close(self) -> None:
        if self._stage:
            self.timings[self._stage] = round(self.timings.get(self._stage, 0.0) + time.perf_counter() - self._t0, 4)

    def finish(self) -> dict[str, float]:
        self._close()
        self._stage = ""
        return self.timings
