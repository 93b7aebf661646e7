"""Offline evaluation runs, hyperparameter tuning jobs, and the per-store settings they feed.

Every job row here follows the ``recommend.TrainingRun`` pattern (NetBox ``core.Job``): the Celery
task writes status, stage, progress, timings and the error onto the row, and the dashboard polls
the row, never Celery's result store. Results are plain JSON on the row so the charts can be
rebuilt from exactly the stored numbers.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from shop_recs.platform.jobs import JobRun, JobStatus
from shop_recs.stores.scoping import StoreOwned


class Protocol(models.TextChoices):
    TEMPORAL = "temporal", _("Temporal cutoff (last days are the test)")
    RANDOM = "random", _("Random holdout per customer")
    LEAVE_LAST = "leave_last", _("Leave the last item out per customer")


class EvaluationRun(JobRun):
    """One offline comparison of algorithms on a train/test split of the store's interactions.

    ``protocol_params`` holds the protocol's knobs (``test_days``, ``test_fraction``, ``k``); ``ks``
    the cutoffs the analyst asked for (curves always cover k = 1..50). ``results`` is the whole
    outcome as JSON, see ``docs/evaluation.md`` for its shape; ``split_info`` what the split kept
    and dropped.
    """

    algorithms = models.JSONField(_("algorithms"), default=list)
    protocol = models.CharField(_("protocol"), max_length=16, choices=Protocol.choices, default=Protocol.TEMPORAL)
    protocol_params = models.JSONField(_("protocol parameters"), default=dict, blank=True)
    ks = models.JSONField(_("cutoffs k"), default=list)
    auto_tune = models.BooleanField(_("tune on a validation split first"), default=False)
    tune_metric = models.CharField(_("tuning metric"), max_length=32, default="ndcg@10")
    split_info = models.JSONField(_("split"), default=dict, blank=True)
    results = models.JSONField(_("results"), default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("evaluation run")
        verbose_name_plural = _("evaluation runs")
        indexes = [models.Index(fields=["store", "-created_at"], name="evalrun_store_created_idx")]

    def __str__(self) -> str:
        return f"#{self.pk} {', '.join(self.algorithms)} ({self.status})"

    @property
    def main_k(self) -> int:
        return int(max(self.ks or [10]))


class TuningJob(JobRun):
    """A hyperparameter search: one :class:`TuningTrial` per (algorithm, configuration), run in parallel.

    ``leaderboard`` maps each algorithm to its best trial (``trial``, ``params``, ``score``) once the
    job is finalised; ``best`` names the best algorithm overall. ``promoted_at`` is set when a merchant
    copied the winner into the store's :class:`StoreTrainingConfig`.
    """

    algorithms = models.JSONField(_("algorithms"), default=list)
    protocol = models.CharField(_("protocol"), max_length=16, choices=Protocol.choices, default=Protocol.TEMPORAL)
    protocol_params = models.JSONField(_("protocol parameters"), default=dict, blank=True)
    metric = models.CharField(_("metric"), max_length=32, default="ndcg@10")
    n_iter = models.PositiveSmallIntegerField(_("max configurations per algorithm"), default=20)
    grids = models.JSONField(_("search spaces"), default=dict, blank=True)
    split_info = models.JSONField(_("validation split"), default=dict, blank=True)
    n_trials = models.PositiveIntegerField(_("trials"), default=0)
    leaderboard = models.JSONField(_("leaderboard"), default=dict, blank=True)
    best = models.CharField(_("best algorithm"), max_length=64, blank=True, default="")
    dispatch = models.CharField(_("dispatch"), max_length=16, blank=True, default="")
    promoted_at = models.DateTimeField(_("promoted"), null=True, blank=True)
    promoted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("tuning job")
        verbose_name_plural = _("tuning jobs")
        indexes = [models.Index(fields=["store", "-created_at"], name="tuningjob_store_created_idx")]

    def __str__(self) -> str:
        return f"#{self.pk} {', '.join(self.algorithms)} ({self.status})"


class TuningTrial(StoreOwned):
    """One configuration of one algorithm, fitted and scored on the job's validation split by one task."""

    job = models.ForeignKey(TuningJob, on_delete=models.CASCADE, related_name="trials")
    algorithm = models.CharField(_("algorithm"), max_length=64)
    params = models.JSONField(_("parameters"), default=dict, blank=True)
    position = models.PositiveSmallIntegerField(_("order"), default=0)
    status = models.CharField(_("status"), max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    score = models.FloatField(_("score"), null=True, blank=True)
    fit_seconds = models.FloatField(_("fit seconds"), null=True, blank=True)
    seconds = models.FloatField(_("seconds"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True, default="")
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    class Meta:
        ordering = ["job_id", "algorithm", "position", "pk"]
        verbose_name = _("tuning trial")
        verbose_name_plural = _("tuning trials")

    def __str__(self) -> str:
        return f"{self.algorithm} {self.params}"
