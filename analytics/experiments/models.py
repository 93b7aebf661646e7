"""A/B experiments on a placement, their variants, and the attribution of activity to served lists.

Where the variant of a served list is recorded: ``RecommendationList.variant`` already exists, so
served lists in an experiment carry ``"<experiment id>:<variant id>"`` there (ids, not names, so a
renamed variant keeps its history). No second table is needed on the hot path.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from shop_recs.stores.scoping import StoreOwned


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
