"""Ad campaigns, the impressions they serve, and per-customer daily frequency counters.

Money: a campaign is priced per thousand impressions (CPM) or per click (CPC) with a ``bid``, and
has a total ``budget`` and an optional ``daily_budget``, all in the store currency (``Store.currency``,
two decimals). What has been charged is kept in integer **micro-units** of the currency
(``spend_micros``, ``day_spend_micros``, ``Impression.cost_micros``) so that the conditional UPDATE
that charges it is exact on PostgreSQL and SQLite alike (a CPM bid of 2.50 charges 2,500 micro-units
per impression; SQLite would add decimals as floats). See ``shop_recs.ads.sql`` and docs/ads.md.

:class:`DailyCap` holds one row per (campaign, customer, day) whose ``count`` is incremented only
while it is below the frequency cap.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

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


#: Micro-units per currency unit: every charged amount is an integer count of these.
MICROS = 1_000_000
#: The largest budget (total or daily) a form or the database accepts, in currency units.
MAX_BUDGET = Decimal("1000000000")
#: The largest bid (per thousand impressions or per click), in currency units.
MAX_BID = Decimal("100000")


def to_micros(amount: Decimal) -> int:
    """Currency units (two decimals) to integer micro-units."""
    return int(amount * MICROS)


def from_micros(micros: int) -> Decimal:
    """Integer micro-units to currency units, keeping sub-cent precision (a CPM impression costs fractions)."""
    return (Decimal(int(micros)) / MICROS).quantize(Decimal("0.000001"))


class PricingModel(models.TextChoices):
    CPM = "cpm", _("Per thousand impressions (CPM)")
    CPC = "cpc", _("Per click (CPC)")


class Campaign(StoreOwned):
    """A promoted creative with its targeting, schedule, pricing, money budgets and frequency cap.

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
    pricing_model = models.CharField(_("pricing"), max_length=3, choices=PricingModel.choices, default=PricingModel.CPM)
    # Default 10.00 CPM (0.01 per impression): what campaigns that had an impression budget were
    # converted at (migration 0003_money); the form always asks for a bid.
    bid = models.DecimalField(
        _("bid"),
        max_digits=8,
        decimal_places=2,
        default=Decimal("10.00"),
        help_text=_("Per thousand impressions (CPM) or per click (CPC)."),
    )
    budget = models.DecimalField(_("total budget"), max_digits=12, decimal_places=2)
    daily_budget = models.DecimalField(
        _("daily budget"),
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        help_text=_("Empty: no daily limit. Spending is paced evenly over each (UTC) day."),
    )
    # Charged so far, in micro-units of the currency (see the module docstring); written only by the
    # conditional UPDATEs of shop_recs.ads.sql.
    spend_micros = models.BigIntegerField(_("spend (micro-units)"), default=0)
    spend_day = models.DateField(_("spend day"), null=True, blank=True)
    day_spend_micros = models.BigIntegerField(_("spend on the spend day (micro-units)"), default=0)
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
            models.CheckConstraint(condition=models.Q(bid__gt=0), name="campaign_bid_positive"),
            models.CheckConstraint(
                condition=models.Q(daily_budget__isnull=True) | models.Q(daily_budget__gt=0),
                name="campaign_daily_budget_positive",
            ),
            models.CheckConstraint(
                condition=models.Q(spend_micros__gte=0) & models.Q(day_spend_micros__gte=0),
                name="campaign_spend_not_negative",
            ),
            models.CheckConstraint(condition=models.Q(weight__gt=0), name="campaign_weight_positive"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def spend(self) -> Decimal:
        return from_micros(self.spend_micros)

    @property
    def remaining(self) -> Decimal:
        return max(Decimal(0), from_micros(to_micros(self.budget) - self.spend_micros))

    @property
    def cost_micros(self) -> int:
        """What one billable event costs: an impression (CPM: bid / 1000) or a click (CPC: bid)."""
        return billable_cost_micros(self.pricing_model, self.bid)


def billable_cost_micros(pricing_model: str, bid: Decimal) -> int:
    """CPM: bid / 1000 per impression; CPC: bid per click (integer micro-units, exact for 2-decimal bids)."""
    micros = to_micros(bid)
    return micros // 1000 if pricing_model == PricingModel.CPM else micros


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
    # What this impression (CPM) or its first click (CPC) was charged, in micro-units; 0 when free
    # (a CPC impression not clicked, a click the budget could no longer pay for).
    cost_micros = models.BigIntegerField(_("cost (micro-units)"), default=0)

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
