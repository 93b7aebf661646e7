"""Serving: the store's rules, the log of served lists, and online experiments.

``StoreRules`` and ``RecommendationList`` moved here from the ``recommend`` app, ``Experiment`` and
``Variant`` from ``experiments`` (assignment is a serving concern: the hot path reads them). Their
tables keep the old names through ``Meta.db_table``; ``serving/migrations/0001`` moves only Django's
state (see docs/architecture.md, "Model moves").
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from shop_recs.stores.scoping import StoreOwned

#: The key of the placement every store has: requests without a known placement get its rules.
DEFAULT_PLACEMENT_KEY = "default"


class Placement(StoreOwned):
    """Where a store shows recommendations (home page, product page, cart, email, ...), with its own rules.

    Recombee calls these scenarios. Every store has exactly one default placement (created with the
    store; ``serving/migrations/0006`` made one from each store's former store-wide rules): it serves
    requests that name no placement or one the store does not have. The placement's rules are the
    ``StoreRules`` row pointing at it (none yet: the built-in defaults).
    """

    key = models.SlugField(_("key"), max_length=64)
    name = models.CharField(_("name"), max_length=100)
    is_default = models.BooleanField(_("default placement"), default=False)
    # Blank: the algorithm the store's live model serves by default (see serving.runtime).
    algorithm = models.CharField(_("algorithm"), max_length=64, blank=True, default="")
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["-is_default", "name", "pk"]
        verbose_name = _("placement")
        verbose_name_plural = _("placements")
        constraints = [
            models.UniqueConstraint(fields=["store", "key"], name="placement_key_per_store"),
            models.UniqueConstraint(
                fields=["store"], condition=models.Q(is_default=True), name="placement_one_default_per_store"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.key})"

    def save(self, *args, **kwargs) -> None:
        super().save(*args, **kwargs)
        # serving.rules_snapshot imports these models: importing it at the top would be a cycle.
        from shop_recs.serving.rules_snapshot import invalidate_rules

        invalidate_rules(self.store_id)

    def delete(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        store_id = self.store_id
        result = super().delete(*args, **kwargs)
        # serving.rules_snapshot imports these models: importing it at the top would be a cycle.
        from shop_recs.serving.rules_snapshot import invalidate_rules

        invalidate_rules(store_id)
        return result


def default_placement(store_id: int) -> Placement:
    """The store's default placement, made if missing (stores get one on creation; see receivers)."""
    # all stores: the store is named explicitly (this runs in saves, with or without a scope active).
    placement, _created = Placement.all_stores.get_or_create(
        store_id=store_id, is_default=True, defaults={"key": DEFAULT_PLACEMENT_KEY, "name": "Default"}
    )
    return placement


class StoreRules(StoreOwned):
    """The merchant's business rules for one placement's recommendations (one row per placement).

    A row saved without a placement is attached to the store's default placement (the rules code and
    tests from before placements create rows with ``store=`` only; they meant the store-wide rules).

    Product and category references are stored as lists of primary keys (JSON) rather than M2M tables:
    the serving layer reads the whole row once and keeps it in memory, so the row's shape is what
    matters, not joinability.
    """

    placement = models.OneToOneField(
        Placement, null=True, blank=True, on_delete=models.CASCADE, related_name="rules", verbose_name=_("placement")
    )
    exclude_inactive = models.BooleanField(_("exclude inactive products"), default=True)
    exclude_out_of_stock = models.BooleanField(_("exclude out-of-stock products"), default=True)
    exclude_purchased = models.BooleanField(_("exclude products the customer already bought"), default=True)
    repurchasable_category_ids = models.JSONField(_("categories that can be bought again"), default=list, blank=True)
    blocked_product_ids = models.JSONField(_("blocked products"), default=list, blank=True)
    pinned_product_ids = models.JSONField(_("pinned products"), default=list, blank=True)
    boosted_product_ids = models.JSONField(_("boosted products"), default=list, blank=True)
    boosted_category_ids = models.JSONField(_("boosted categories"), default=list, blank=True)
    boost_weight = models.FloatField(_("boost weight"), default=1.5)
    default_diversity = models.FloatField(_("default diversity"), default=0.0)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        db_table = "recommend_storerules"
        verbose_name = _("store rules")
        verbose_name_plural = _("store rules")
        constraints = [
            # At most one row without a placement per store (rows get one on save; see the class doc).
            models.UniqueConstraint(
                fields=["store"], condition=models.Q(placement__isnull=True), name="storerules_one_unplaced_per_store"
            )
        ]

    def __str__(self) -> str:
        return f"rules of store {self.store_id}, placement {self.placement_id}"

    def save(self, *args, **kwargs) -> None:
        if self.placement_id is None and self.store_id is not None:
            self.placement = default_placement(self.store_id)
        super().save(*args, **kwargs)
        # Serving keeps the rules in memory; drop this process's copy at once (others expire by TTL).
        from shop_recs.serving.rules_snapshot import invalidate_rules

        invalidate_rules(self.store_id)


class RecommendationList(StoreOwned):
    """One served list of recommendations, so later clicks and purchases can be attributed to it.

    Written with one INSERT per response (no foreign-key constraints on the customer and version
    columns, for the same reason as ``Event``: this is an append-heavy table on the hot path).
    """

    list_id = models.UUIDField(_("list id"), unique=True)
    endpoint = models.CharField(_("endpoint"), max_length=32)
    placement = models.CharField(_("placement"), max_length=64, blank=True, default="")
    customer = models.ForeignKey(
        "activity.Customer",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    model_version = models.ForeignKey(
        "training.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_constraint=False
    )
    algorithm = models.CharField(_("algorithm"), max_length=64, blank=True, default="")
    variant = models.CharField(_("variant"), max_length=64, blank=True, default="")
    anchor_product_id = models.BigIntegerField(_("anchor product"), null=True, blank=True)
    product_ids = models.JSONField(_("products"), default=list)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        db_table = "recommend_recommendationlist"
        ordering = ["-created_at"]
        verbose_name = _("recommendation list")
        verbose_name_plural = _("recommendation lists")
        indexes = [models.Index(fields=["store", "created_at"], name="reclist_store_created_idx")]

    def __str__(self) -> str:
        return f"{self.endpoint} {self.list_id}"


# --- online experiments ----------------------------------------------------------------------


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
    promoted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The figures the promotion rested on, its warnings, and whether the merchant chose "promote anyway".
    promotion_evidence = models.JSONField(_("promotion evidence"), default=dict, blank=True)

    class Meta:
        db_table = "experiments_experiment"
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
        # serving.experiments imports these models: importing it at the top would be a cycle.
        from shop_recs.serving.experiments import invalidate

        invalidate(self.store_id)


class Variant(StoreOwned):
    """One arm of an experiment: a model version, an algorithm of the active run, or a rule override."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="variants")
    name = models.CharField(_("name"), max_length=64)
    position = models.PositiveSmallIntegerField(_("position"), default=0)
    kind = models.CharField(_("kind"), max_length=16, choices=VariantKind.choices)
    model_version = models.ForeignKey(
        "training.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    algorithm = models.CharField(_("algorithm"), max_length=64, blank=True, default="")
    rule_overrides = models.JSONField(_("rule overrides"), default=dict, blank=True)
    traffic = models.PositiveSmallIntegerField(_("traffic (%)"), validators=[MaxValueValidator(100)])

    class Meta:
        db_table = "experiments_variant"
        ordering = ["experiment", "position", "pk"]
        verbose_name = _("variant")
        verbose_name_plural = _("variants")

    def __str__(self) -> str:
        return f"{self.name} ({self.traffic}%)"

    @property
    def tag(self) -> str:
        """What served lists of this variant carry in ``RecommendationList.variant``."""
        return f"{self.experiment_id}:{self.pk}"


class ChangeKind(models.TextChoices):
    RULES = "rules", _("Rules and pins")
    EXPERIMENT = "experiment", _("Experiment")
    CAMPAIGN = "campaign", _("Ad campaign")
    STORE = "store", _("Store settings")
    PLACEMENT = "placement", _("Placement")
    SEGMENT = "segment", _("Customer segment")


class ShopperFacingChange(StoreOwned):
    """A confirmed change to what shoppers see, other than the live model (whose changes are
    ``training.ActivationRecord``): rules and pins saved, an experiment started, stopped or promoted,
    a campaign started or paused. Written by :func:`shop_recs.serving.audit.record_change`."""

    kind = models.CharField(_("what"), max_length=16, choices=ChangeKind.choices)
    object_id = models.PositiveIntegerField(_("object"), null=True, blank=True)
    summary = models.CharField(_("change"), max_length=300)
    details = models.JSONField(_("details"), default=dict, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(_("when"), default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("change to what shoppers see")
        verbose_name_plural = _("changes to what shoppers see")
        indexes = [models.Index(fields=["store", "-created_at"], name="shopchange_store_created_idx")]

    def __str__(self) -> str:
        return f"{self.kind}: {self.summary}"
