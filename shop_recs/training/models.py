"""Training: the runs, the model versions they produce, the schedule, and the training configuration.

A :class:`TrainingRun` is the row the dashboard polls (the NetBox ``core.Job`` pattern): the Celery
task writes its status, stage, progress, timings and metrics there, never into Celery's result
store. A :class:`ModelVersion` is one trained artifact on disk; at most one per store is active and
that is the one serving loads.

These models moved here from the ``recommend`` app (and the last two from ``evaluation``) without
touching their tables: ``Meta.db_table`` keeps the old names, and ``training/migrations/0001``
moves only Django's state (see docs/architecture.md, "Model moves").
"""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from shop_recs.platform.jobs import JobRun, JobStatus
from shop_recs.recsys import registry
from shop_recs.stores.scoping import StoreOwned

#: Statuses that hold the per-store training lock.
ACTIVE_RUN_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)
#: On PostgreSQL, a running run whose heartbeat is older than this lost its worker (setting
#: ``TRAINING_STALE_SECONDS``). Elsewhere (SQLite, no heartbeat thread) the hard time limit + 5 min.
DEFAULT_STALE_SECONDS = 300


class TrainingRun(JobRun):
    """One request to train a store's recommenders, and everything that happened to it.

    ``algorithms`` lists registry names; ``params`` maps each name to its hyperparameters and may hold
    ``"_matrix"`` (matrix-builder settings) and ``"_gate"`` (activation gate settings). The partial
    unique constraint allows one queued-or-running run per store: that is the training lock, and it
    holds across processes because the database enforces it.
    """

    algorithms = models.JSONField(_("algorithms"), default=list)
    params = models.JSONField(_("parameters"), default=dict, blank=True)
    data_stats = models.JSONField(_("data statistics"), default=dict, blank=True)
    metrics = models.JSONField(_("holdout metrics"), default=dict, blank=True)
    gate = models.JSONField(_("activation gate verdict"), default=dict, blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)

    stale_error: ClassVar[str] = (
        "The worker stopped reporting progress (killed or lost); the active model was not changed."
    )

    class Meta:
        db_table = "recommend_trainingrun"
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

    @classmethod
    def stale_after(cls) -> timedelta:
        """How old a running run's heartbeat may get before the run counts as abandoned."""
        configured = settings.TRAINING_STALE_SECONDS
        if configured:
            return timedelta(seconds=float(configured))
        if connection.vendor == "postgresql":  # a heartbeat thread beats while a stage runs
            return timedelta(seconds=DEFAULT_STALE_SECONDS)
        return timedelta(seconds=settings.TRAINING_TIME_LIMIT + 300)


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
    # Who made it live and why (training's gate, a rollback, an experiment's promotion, ...).
    activated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    activation_reason = models.CharField(_("activation reason"), max_length=200, blank=True)
    # Set when a load found the file missing or its checksum wrong; such a version is never activated.
    corrupt_at = models.DateTimeField(_("found corrupt"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        db_table = "recommend_modelversion"
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


class ActivationSource(models.TextChoices):
    """How a version went live (one value per path through ``training.activation.activate_version``)."""

    GATE = "gate", _("training run, passed the gate")
    FORCED = "forced", _("training run, gate skipped (setup command)")
    MANUAL = "manual", _("activated by hand")
    ROLLBACK = "rollback", _("rollback")
    PROMOTION = "promotion", _("experiment promotion")
    ADMIN = "admin", _("Django admin")


class ActivationRecord(StoreOwned):
    """One change of a store's live model: what went live, what it replaced, who, how and why.

    Written in the same transaction as the swap, so the history is exactly the sequence of live
    versions. ``details`` holds the evidence (the gate's figures, the experiment's result and any
    "promote anyway" override); it never holds customer data.
    """

    version = models.ForeignKey(
        ModelVersion, on_delete=models.CASCADE, related_name="activations", verbose_name=_("version")
    )
    previous_version = models.ForeignKey(
        ModelVersion,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("previous version"),
    )
    source = models.CharField(_("how"), max_length=16, choices=ActivationSource.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("by"),
    )
    reason = models.CharField(_("why"), max_length=200, blank=True)
    details = models.JSONField(_("evidence"), default=dict, blank=True)
    created_at = models.DateTimeField(_("when"), default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("activation")
        verbose_name_plural = _("activation history")
        indexes = [models.Index(fields=["store", "-created_at"], name="activation_store_created_idx")]

    def __str__(self) -> str:
        return f"v{self.version_id} live ({self.source}) at {self.created_at:%Y-%m-%d %H:%M}"


# --- scheduled retraining -----------------------------------------------------------------------


class TrainingSchedule(StoreOwned):
    """When a store retrains on its own (one row per store), read by the ``enqueue_due_trainings`` beat task.

    Either ``daily_hour`` (once a day at that UTC hour) or ``interval_hours`` (every N hours) sets the
    cadence; ``daily_hour`` wins when both are set. ``next_due_at`` is when the beat task will next
    consider the store; a due store with no new events since its last successful run is skipped (the
    reason is kept in ``last_outcome``). Merchants edit it in the Django admin for now.
    """

    enabled = models.BooleanField(_("enabled"), default=True)
    interval_hours = models.PositiveSmallIntegerField(
        _("every N hours"), null=True, blank=True, default=24, help_text=_("Ignored when a daily hour is set.")
    )
    daily_hour = models.PositiveSmallIntegerField(
        _("daily at hour (UTC)"), null=True, blank=True, help_text=_("0-23; leave empty to use the interval.")
    )
    algorithms = models.JSONField(_("algorithms"), default=list, blank=True, help_text=_('e.g. ["hybrid"]'))
    params = models.JSONField(_("parameters"), default=dict, blank=True)
    last_enqueued_at = models.DateTimeField(_("last enqueued"), null=True, blank=True)
    next_due_at = models.DateTimeField(_("next due"), null=True, blank=True)
    last_run = models.ForeignKey(
        TrainingRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", verbose_name=_("last run")
    )
    last_outcome = models.CharField(_("last outcome"), max_length=300, blank=True, default="")
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        db_table = "recommend_trainingschedule"
        verbose_name = _("training schedule")
        verbose_name_plural = _("training schedules")
        constraints = [models.UniqueConstraint(fields=["store"], name="trainingschedule_one_per_store")]
        indexes = [models.Index(fields=["enabled", "next_due_at"], name="trainingschedule_due_idx")]

    def __str__(self) -> str:
        if self.daily_hour is not None:
            return f"store {self.store_id}: daily at {self.daily_hour:02d}:00 UTC"
        return f"store {self.store_id}: every {self.interval_hours}h"

    def clean(self) -> None:
        errors = {}
        if self.daily_hour is not None and self.daily_hour > 23:
            errors["daily_hour"] = _("Use an hour from 0 to 23.")
        if self.daily_hour is None and not self.interval_hours:
            errors["interval_hours"] = _("Set an interval of at least 1 hour, or a daily hour.")
        algos = self.algorithms or []
        if not isinstance(algos, list) or any(a not in registry.ALGORITHMS for a in algos):
            errors["algorithms"] = _("A list of known algorithms: %(known)s") % {
                "known": ", ".join(sorted(registry.ALGORITHMS))
            }
        if errors:
            raise ValidationError(errors)

    def save(self, *args, **kwargs) -> None:
        if self.next_due_at is None:
            # schedule.py imports these models: importing it at the top would be a cycle.
            from shop_recs.training.schedule import first_due

            self.next_due_at = first_due(self, timezone.now())
        super().save(*args, **kwargs)


# --- the training configuration and the activation gate's settings -----------------------------


class EvaluationSettings(StoreOwned):
    """Per-store monitoring settings (one row per store).

    ``max_metric_drop`` is the store's default for the training activation gate: a new model whose
    NDCG@10 is more than this fraction below the active model's is not activated.
    """

    max_metric_drop = models.FloatField(
        _("maximum metric drop"),
        default=0.2,
        help_text=_("A fraction between 0 and 1 of the active model's NDCG@10."),
    )
    # A candidate of another configuration must beat the live one by more than the noise: the lower
    # end of the paired bootstrap interval of the difference must be above 0, and the relative lift
    # at least ``min_lift``. A 0.0002 NDCG edge is a tie, and a tie is no reason to change the model.
    min_lift = models.FloatField(
        _("minimum lift"),
        default=0.0,
        help_text=_("A fraction: 0.02 asks a new kind of model for at least 2% more NDCG@10 than the live one."),
    )
    max_coverage_loss = models.FloatField(
        _("largest allowed coverage loss"),
        default=0.1,
        help_text=_("A fraction of the live model's catalog coverage that a new model may lose."),
    )
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        db_table = "evaluation_evaluationsettings"
        verbose_name = _("evaluation settings")
        verbose_name_plural = _("evaluation settings")
        constraints = [models.UniqueConstraint(fields=["store"], name="evaluationsettings_one_per_store")]

    def __str__(self) -> str:
        return f"evaluation settings of store {self.store_id}"


class StoreTrainingConfig(StoreOwned):
    """The algorithms and hyperparameters the store's training should use (one row per store).

    Written by "promote" on a tuning job; ``params`` maps an algorithm name to its keyword arguments,
    the same shape as ``TrainingRun.params``. ``source_job`` says which tuning job it came from.
    """

    algorithms = models.JSONField(_("algorithms"), default=list, blank=True)
    params = models.JSONField(_("parameters"), default=dict, blank=True)
    source_job = models.ForeignKey(
        "evaluation.TuningJob",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("from job"),
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        db_table = "evaluation_storetrainingconfig"
        verbose_name = _("training configuration")
        verbose_name_plural = _("training configurations")
        constraints = [models.UniqueConstraint(fields=["store"], name="storetrainingconfig_one_per_store")]

    def __str__(self) -> str:
        return f"training configuration of store {self.store_id}"
