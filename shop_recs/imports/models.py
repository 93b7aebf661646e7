"""Records of file imports: what was read, written and skipped, and why."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from shop_recs.stores.scoping import StoreOwned


class ImportKind(models.TextChoices):
    CATALOG = "catalog", _("Catalog")
    EVENTS = "events", _("Events")
    UCI = "uci", _("UCI Online Retail")


class ImportStatus(models.TextChoices):
    # A dashboard upload is stored first and waits here for its job (see ``uploads.py``).
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    # The same file (same content fingerprint) was already imported into this store: nothing written.
    DUPLICATE = "duplicate", _("Already imported")


class ImportJob(StoreOwned):
    """One run of an importer over one file, with its counts, report and error list.

    ``fingerprint`` is the SHA-256 of the file's bytes. Event-bearing imports (events, UCI) refuse a
    file whose fingerprint already has a succeeded job in the same store, so re-running an import
    never duplicates events; the partial unique constraint makes that hold under concurrency too
    (the succeeded status is written in the same transaction as the data). Catalog imports are upserts
    and may be applied again, so they are exempt.
    """

    kind = models.CharField(_("kind"), max_length=16, choices=ImportKind.choices)
    file_name = models.CharField(_("file name"), max_length=500)
    fingerprint = models.CharField(_("content SHA-256"), max_length=64, blank=True, default="")
    status = models.CharField(_("status"), max_length=16, choices=ImportStatus.choices, default=ImportStatus.RUNNING)
    rows_read = models.PositiveIntegerField(_("rows read"), default=0)
    rows_imported = models.PositiveIntegerField(_("rows imported"), default=0)
    rows_skipped = models.PositiveIntegerField(_("rows skipped"), default=0)
    # reason -> number of rows, e.g. {"cancellation": 9288}
    skipped = models.JSONField(_("skipped by reason"), default=dict, blank=True)
    # Importer-specific figures: products created/updated, customers created, events written, ...
    report = models.JSONField(_("report"), default=dict, blank=True)
    # [{"line": 12, "message": "..."}], capped; error_count holds the full number.
    errors = models.JSONField(_("errors"), default=list, blank=True)
    error_count = models.PositiveIntegerField(_("error count"), default=0)
    message = models.TextField(_("message"), blank=True, default="")
    started_at = models.DateTimeField(_("started"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The job columns the one lifecycle of ``platform.jobs`` writes (claim, progress, heartbeat, the
    # stale sweep): an import is a job row too, with its own report columns above.
    stage = models.CharField(_("stage"), max_length=64, blank=True, default="")
    progress = models.PositiveSmallIntegerField(_("progress (%)"), default=0)
    rows_total = models.PositiveIntegerField(_("rows in the file"), null=True, blank=True)
    heartbeat_at = models.DateTimeField(_("last heartbeat"), null=True, blank=True)
    # "hostname:pid" of the process that claimed the job (``platform.jobs.worker_identity``).
    worker = models.CharField(_("worker"), max_length=255, blank=True, default="")
    error = models.TextField(_("error"), blank=True, default="")
    # The uploaded file under VAR_DIR, relative to it; cleared once the file is deleted.
    stored_file = models.CharField(_("stored file"), max_length=500, blank=True, default="")

    #: ``platform.jobs.swept_models`` picks this model up: its rows are failed by the stale sweep.
    job_row: ClassVar[bool] = True
    #: The columns a failure's reason is written to (``message`` is what the pages show).
    error_fields: ClassVar[tuple[str, ...]] = ("error", "message")
    stale_error: ClassVar[str] = (
        "The import stopped reporting progress (its worker was killed or lost); nothing was imported."
    )

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = _("import job")
        verbose_name_plural = _("import jobs")
        constraints = [
            models.UniqueConstraint(
                fields=["store", "kind", "fingerprint"],
                # Catalog files are upserts and may be re-applied; only event-bearing kinds are once-only.
                condition=models.Q(status="succeeded") & ~models.Q(fingerprint="") & ~models.Q(kind="catalog"),
                name="importjob_store_kind_fingerprint_once",
            )
        ]
        indexes = [models.Index(fields=["store", "-started_at"], name="importjob_store_started_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.file_name} ({self.get_status_display()})"

    @classmethod
    def stale_after(cls) -> timedelta:
        """``JOB_STALE_SECONDS``: a command-line import beats only when it starts, so the threshold
        must outlast the longest import; a killed worker's job is taken over at once instead
        (``uploads.run_import_job``), and a stopped web process's at its restart."""
        return timedelta(seconds=settings.JOB_STALE_SECONDS)

    @property
    def is_finished(self) -> bool:
        return self.status in (ImportStatus.SUCCEEDED, ImportStatus.FAILED, ImportStatus.DUPLICATE)

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()
