"""Training runs and the model versions they produce.

A :class:`TrainingRun` is the row the dashboard polls (the NetBox ``core.Job`` pattern): the Celery
task writes its status, stage, progress, timings and metrics there, never into Celery's result
store. A :class:`ModelVersion` is one trained artifact on disk; at most one per store is active and
that is the one serving loads.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from shop_recs.stores.scoping import StoreOwned


class RunStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")


#: Statuses that hold the per-store training lock.
ACTIVE_RUN_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)


class TrainingRun(StoreOwned):
    """One request to train a store's recommenders, and everything that happened to it.

    ``algorithms`` lists registry names; ``params`` maps each name to its hyperparameters and may hold
    ``"_matrix"`` (matrix-builder settings) and ``"_gate"`` (activation gate settings). The partial
    unique constraint allows one queued-or-running run per store: that is the training lock, and it
    holds across processes because the database enforces it.
    """

    algorithms = models.JSONField(_("algorithms"), default=list)
    params = models.JSONField(_("parameters"), default=dict, blank=True)
    status = models.CharField(_("status"), max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    stage = models.CharField(_("stage"), max_length=64, blank=True, default="")
    progress = models.PositiveSmallIntegerField(_("progress (%)"), default=0)
    timings = models.JSONField(_("seconds per stage"), default=dict, blank=True)
    data_stats = models.JSONField(_("data statistics"), default=dict, blank=True)
    metrics = models.JSONField(_("holdout metrics"), default=dict, blank=True)
    gate = models.JSONField(_("activation gate verdict"), default=dict, blank=True)
    error = models.TextField(_("error"), blank=True, default="")
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    # Bumped on every progress write; a "running" run whose heartbeat is old lost its worker.
    heartbeat_at = models.DateTimeField(_("last heartbeat"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("training run")
        verbose_name_plural = _("training runs")
        constraints = [
            models.UniqueConstraint(
                fields=["store"],
                condition=models.Q(status__in=["queued", "running"]),
                name="trainingrun_one_active_per_store",
            ),
        ]
        indexes = [models.Index(fields=["store", "-created_at"], name="trainingrun_store_created_idx")]

    def __str__(self) -> str:
        return f"#{self.pk} {', '.join(self.algorithms)} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in (RunStatus.SUCCEEDED, RunStatus.FAILED)

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class ModelVersion(StoreOwned):
    """One trained model on disk: an ``.npz`` (no pickle) holding the model and its id maps.

    ``artifact_path`` is relative to ``MODEL_DIR``; ``checksum`` is the file's SHA-256, checked before
    every load. ``user_ids``/``item_ids`` (Customer/Product pks per row/column) live inside the
    artifact, so the file alone is enough to serve. The partial unique constraint allows at most
    one active version per store.
    """

    run = models.ForeignKey(TrainingRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="versions")
    algorithm = models.CharField(_("algorithm"), max_length=64)
    params = models.JSONField(_("parameters"), default=dict, blank=True)
    artifact_path = models.CharField(_("artifact path"), max_length=500)
    checksum = models.CharField(_("SHA-256"), max_length=64)
    size_bytes = models.BigIntegerField(_("size (bytes)"), default=0)
    n_users = models.PositiveIntegerField(_("users"), default=0)
    n_items = models.PositiveIntegerField(_("items"), default=0)
    metrics = models.JSONField(_("holdout metrics"), default=dict, blank=True)
    is_active = models.BooleanField(_("active"), default=False)
    activated_at = models.DateTimeField(_("activated"), null=True, blank=True)
    # Set when a load found the file missing or its checksum wrong; such a version is never activated.
    corrupt_at = models.DateTimeField(_("found corrupt"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("model version")
        verbose_name_plural = _("model versions")
        constraints = [
            models.UniqueConstraint(
                fields=["store"], condition=models.Q(is_active=True), name="modelversion_one_active_per_store"
            ),
        ]

    @property
    def ndcg_at_10(self) -> float | None:
        return (self.metrics or {}).get("ndcg@10")

    @property
    def recall_at_10(self) -> float | None:
        return (self.metrics or {}).get("recall@10")

    def __str__(self) -> str:
        return f"v{self.pk} {self.algorithm}{' (active)' if self.is_active else ''}"
