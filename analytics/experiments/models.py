"""A/B experiments on a placement, their variants, and the attribution of activity to served lists.

Where the variant of a served list is recorded: ``RecommendationList.variant`` already exists, so
served lists in an experiment carry ``"<experiment id>:<variant id>"`` there (ids, not names, so a
renamed variant keeps its history). No second table is needed on the hot path.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from shop_recs.stores.scoping import StoreOwned


class ExperimentStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    RUNNING = "running", _("Running")
    STOPPED = "stopped", _("Stopped")


class VariantKind(models.TextChoices):
    MODEL_VERSION = "model_version", _("Model version")
    ALGORITHM = "algorithm", _("Algorithm of the active run")
    RULES = "rules", _("Rule-set override")


class Experiment(StoreOwned):
    """An A/B test on one placement: its variants split the traffic of that placement.

    At most one experiment per store and placement may be running (partial unique constraint), so a
    request's placement names its experiment without ambiguity.
    """

    name = models.CharField(_("name"), max_length=200)
    placement = models.CharField(_("placement"), max_length=64)
    description = models.TextField(_("hypothesis"), blank=True, default="")
    status = models.CharField(
        _("status"), max_length=16, choices=ExperimentStatus.choices, default=ExperimentStatus.DRAFT
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    stopped_at = models.DateTimeField(_("stopped"), null=True, blank=True)
    promoted_variant = models.ForeignKey(
        "Variant", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", verbose_name=_("promoted")
    )
    promoted_at = models.DateTimeField(_("promoted"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("experiment")
        verbose_name_plural = _("experiments")
        constraints = [
            models.UniqueConstraint(
                fields=["store", "placement"],
                condition=models.Q(status="running"),
                name="experiment_one_running_per_placement",
            )
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.name} ({self.placement}, {self.status})"

    def save(self, *args, **kwargs) -> None:
        super().save(*args, **kwargs)
        from analytics.experiments.assignment import invalidate

        invalidate(self.store_id)


class Variant(StoreOwned):
    """One arm of an experiment: a model version, an algorithm of the active run, or a rule override."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="variants")
    name = models.CharField(_("name"), max_length=64)
    position = models.PositiveSmallIntegerField(_("position"), default=0)
    kind = models.CharField(_("kind"), max_length=16, choices=VariantKind.choices)
    model_version = models.ForeignKey(
        "recommend.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    algorithm = models.CharField(_("algorithm"), max_length=64, blank=True, default="")
    rule_overrides = models.JSONField(_("rule overrides"), default=dict, blank=True)
    traffic = models.PositiveSmallIntegerField(_("traffic (%)"), validators=[MaxValueValidator(100)])

    class Meta:
        ordering = ["experiment", "position", "pk"]
        verbose_name = _("variant")
        verbose_name_plural = _("variants")

    def __str__(self) -> str:
        return f"{self.name} ({self.traffic}%)"

    @property
    def tag(self) -> str:
        """What served lists of this variant carry in ``RecommendationList.variant``."""
        return f"{self.experiment_id}:{self.pk}"


class AttributionSettings(StoreOwned):
    """Attribution windows of a store, and the watermark of the incremental attribution task."""

    click_window_hours = models.PositiveIntegerField(_("click / cart window (hours)"), default=24)
    purchase_window_days = models.PositiveIntegerField(_("purchase window (days)"), default=7)
    #: Events with an id up to this one have been attributed.
    last_event_id = models.BigIntegerField(_("last attributed event id"), default=0)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("attribution settings")
        verbose_name_plural = _("attribution settings")
        constraints = [models.UniqueConstraint(fields=["store"], name="attributionsettings_one_per_store")]

    def __str__(self) -> str:
        return f"attribution of store {self.store_id}"


class Attribution(StoreOwned):
    """One click, cart add or purchase credited to the served list that led to it.

    Denormalised (the list's version, algorithm, placement and variant are copied) so the pages
    aggregate one table. ``via`` says whether the event named the list or followed it in the window.
    """

    event_id = models.BigIntegerField(_("event"), unique=True)
    event_type = models.CharField(_("type"), max_length=16)
    list_id = models.UUIDField(_("list id"))
    list_created_at = models.DateTimeField(_("list served"))
    timestamp = models.DateTimeField(_("time"))
    customer_id = models.BigIntegerField(_("customer"), null=True, blank=True)
    product_id = models.BigIntegerField(_("product"))
    revenue = models.FloatField(_("revenue"), default=0.0)
    placement = models.CharField(_("placement"), max_length=64, blank=True, default="")
    model_version_id = models.BigIntegerField(_("model version"), null=True, blank=True)
    algorithm = models.CharField(_("algorithm"), max_length=64, blank=True, default="")
    variant = models.CharField(_("variant"), max_length=64, blank=True, default="")
    via = models.CharField(_("via"), max_length=8)

    class Meta:
        ordering = ["-timestamp"]
        verbose_name = _("attribution")
        verbose_name_plural = _("attributions")
        indexes = [
            models.Index(fields=["store", "timestamp"], name="attribution_store_time_idx"),
            models.Index(fields=["store", "variant"], name="attribution_store_variant_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id} -> {self.list_id}"
