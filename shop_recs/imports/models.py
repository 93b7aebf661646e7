"""Records of file imports: what was read, written and skipped, and why."""

from __future__ import annotations

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

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()
