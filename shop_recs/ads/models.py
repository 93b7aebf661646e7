"""Ad campaigns, the impressions they serve, and per-customer daily frequency counters.

Budget and frequency caps are enforced with conditional UPDATEs at serving time (see
``shop_recs.ads.services.record_impression``): ``Campaign.impressions_served`` is the counter the
budget check updates atomically, and :class:`DailyCap` holds one row per (campaign, customer, day)
whose ``count`` is incremented only while it is below the cap.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from shop_recs.stores.scoping import StoreOwned


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    ACTIVE = "active", _("Active")
    PAUSED = "paused", _("Paused")
    ENDED = "ended", _("Ended")


class AttributionBasis(models.TextChoices):
    CLICK = "click", _("After a click")
    IMPRESSION = "impression", _("After an impression")


class Campaign(StoreOwned):
    """A promoted creative with its targeting, schedule, impression budget and frequency cap.

    No target segments means the campaign is untargeted (eligible for every visitor, including
    anonymous ones). ``attribution_window_days`` null falls back to ``ADS_ATTRIBUTION_WINDOW_DAYS``
    (default 7).
    """

    name = models.CharField(_("name"), max_length=200)
    title = models.CharField(_("headline"), max_length=200)
    image_url = models.URLField(_("image URL"), max_length=1000, blank=True, default="")
    landing_url = models.URLField(_("landing URL"), max_length=1000)
    products = models.ManyToManyField(
        "catalog.Product", blank=True, related_name="+", verbose_name=_("promoted products")
    )
    categories = models.ManyToManyField(
        "catalog.Category", blank=True, related_name="+", verbose_name=_("promoted categories")
    )
    segments = models.ManyToManyField(
        "analytics.Segment", blank=True, related_name="campaigns", verbose_name=_("target segments")
    )
    starts_at = models.DateTimeField(_("starts"))
    ends_at = models.DateTimeField(_("ends"))
    budget = models.PositiveIntegerField(_("impression budget"))
    impressions_served = models.PositiveIntegerField(_("impressions served"), default=0)
    frequency_cap = models.PositiveSmallIntegerField(
        _("frequency cap"), default=3, help_text=_("Impressions per customer per day.")
    )
    weight = models.FloatField(_("weight"), default=1.0)
    status = models.CharField(_("status"), max_length=8, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT)
    # Why the system (not a merchant) changed the status, e.g. "paused: target segment deleted"; shown on the
    # campaign page and cleared when a merchant sets the status again.
    status_reason = models.CharField(_("status reason"), max_length=300, blank=True, default="")
    attribution_basis = models.CharField(
        _("attribute purchases"), max_length=12, choices=AttributionBasis.choices, default=AttributionBasis.CLICK
    )
    attribution_window_days = models.PositiveSmallIntegerField(
        _("attribution window (days)"), null=True, blank=True, help_text=_("Empty: the store default (7 days).")
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("campaign")
        verbose_name_plural = _("campaigns")
        indexes = [models.Index(fields=["store", "status", "ends_at"], name="campaign_store_status_idx")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ends_at__gt=models.F("starts_at")), name="campaign_ends_after_start"
            ),
            models.CheckConstraint(condition=models.Q(budget__gt=0), name="campaign_budget_positive"),
            models.CheckConstraint(condition=models.Q(weight__gt=0), name="campaign_weight_positive"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def remaining(self) -> int:
        return max(0, self.budget - self.impressions_served)


class Impression(StoreOwned):
    """One creative shown once; ``impression_id`` is what the shop sends back for clicks and purchases."""

    impression_id = models.UUIDField(_("impression id"), default=uuid.uuid4, unique=True, editable=False)
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="impressions")
    customer = models.ForeignKey(
        "activity.Customer", null=True, blank=True, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    slot = models.CharField(_("slot"), max_length=100, blank=True, default="")
    score = models.FloatField(_("ranking score"), default=0.0)
    served_at = models.DateTimeField(_("served"), default=timezone.now)
    clicked_at = models.DateTimeField(_("clicked"), null=True, blank=True)

    class Meta:
        ordering = ["-served_at", "-pk"]
        verbose_name = _("impression")
        verbose_name_plural = _("impressions")
        indexes = [
            models.Index(fields=["campaign", "served_at"], name="impression_campaign_time_idx"),
            models.Index(fields=["customer", "served_at"], name="impression_customer_time_idx"),
        ]

    def __str__(self) -> str:
        return str(self.impression_id)


class DailyCap(StoreOwned):
    """Impressions of one campaign shown to one customer on one (UTC) day: the frequency-cap counter."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+", db_index=False)
    customer = models.ForeignKey("activity.Customer", on_delete=models.CASCADE, related_name="+")
    day = models.DateField(_("day"))
    count = models.PositiveIntegerField(_("impressions"), default=0)

    class Meta:
        verbose_name = _("daily frequency counter")
        verbose_name_plural = _("daily frequency counters")
        constraints = [
            models.UniqueConstraint(fields=["campaign", "customer", "day"], name="dailycap_campaign_customer_day")
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id}/{self.customer_id}/{self.day}: {self.count}"
