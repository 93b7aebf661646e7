"""Customer profiles (用户画像), their job rows, segments, exports and per-store privacy settings.

Profiles are stored, not computed per request, so customer and segment pages load fast. A
:class:`ProfileRun` is the row the dashboard polls while the Celery task computes them (the same
pattern as ``recommend.TrainingRun``).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from analytics import labels
from shop_recs.platform.jobs import JobRun
from shop_recs.stores.scoping import StoreOwned


class PriceBand(models.TextChoices):
    BUDGET = "budget", _("Budget")
    MID = "mid", _("Mid-range")
    PREMIUM = "premium", _("Premium")


class StoreAnalyticsSettings(StoreOwned):
    """Per-store analytics settings: differential-privacy noise, its budget, and small-cell suppression.

    ``dp_epsilon`` null means no noise; otherwise it is the ε of one noisy count (discrete Laplace of
    scale 1/ε) and ``dp_budget`` bounds the ε that new releases may spend per ``dp_budget_window_days``
    (see ``docs/privacy.md``). ``min_cell_size`` (k) hides any figure below k: the noisy one with DP
    on, the true one with DP off. ``segment_k`` null lets silhouette choose the number of auto segments.
    ``segmentation`` holds the last clustering's feature names, scaling and scores (for the charts).
    """

    dp_epsilon = models.FloatField(_("privacy epsilon"), null=True, blank=True)
    min_cell_size = models.PositiveIntegerField(_("minimum cell size (k)"), default=5)
    revenue_clip = models.FloatField(
        _("revenue clip per customer"),
        default=1000.0,
        help_text=_("Bounds one customer's share of a noisy revenue sum."),
    )
    segment_k = models.PositiveSmallIntegerField(_("number of auto segments"), null=True, blank=True)
    segmentation = models.JSONField(_("last segmentation"), default=dict, blank=True)
    dp_budget = models.FloatField(
        _("privacy budget (total epsilon)"),
        default=10.0,
        help_text=_("Most epsilon that new noisy figures may spend in one budget window."),
    )
    dp_budget_window_days = models.PositiveSmallIntegerField(_("budget window (days)"), default=30)
    # Secret per store: keys the seeds of the noise, so knowing the code does not reveal the noise.
    # Never shown; generated on first use (analytics.services.noise_key).
    noise_key = models.CharField(max_length=64, blank=True, default="", editable=False)

    class Meta:
        verbose_name = _("analytics settings")
        verbose_name_plural = _("analytics settings")
        constraints = [models.UniqueConstraint(fields=["store"], name="analyticssettings_store_unique")]

    def __str__(self) -> str:
        return f"analytics settings #{self.store_id}"


class ProfileRun(JobRun):
    """One computation of a store's customer profiles (full, or incremental since the last run).

    ``max_event_id`` is the watermark: the highest event id the run saw. The next incremental run
    recomputes exactly the customers with events above it.
    """

    class Mode(models.TextChoices):
        FULL = "full", _("Full")
        INCREMENTAL = "incremental", _("Incremental")

    mode = models.CharField(_("mode"), max_length=16, choices=Mode.choices, default=Mode.FULL)
    segment = models.BooleanField(_("rebuild segments afterwards"), default=True)
    n_customers = models.PositiveIntegerField(_("customers profiled"), default=0)
    n_events = models.PositiveIntegerField(_("events read"), default=0)
    # Rows stored before today's validation (a year-1 timestamp, a 1e300 value) that readers skip.
    n_skipped_events = models.PositiveIntegerField(_("unreadable events skipped"), default=0)
    max_event_id = models.BigIntegerField(_("event watermark"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("profile run")
        verbose_name_plural = _("profile runs")
        indexes = [models.Index(fields=["store", "-created_at"], name="profilerun_store_created_idx")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.mode} ({self.status})"


class Segment(StoreOwned):
    """A group of customers: an automatic cluster, or an analyst's rule over profile fields.

    Rule segments keep their JSON condition tree in ``rules`` (see ``analytics.rules_builder``) and
    are evaluated live; auto segments are the profiles whose ``auto_segment`` points here.
    ``summary`` caches size, revenue share, AOV and top categories from the last refresh.
    """

    class Kind(models.TextChoices):
        AUTO = "auto", _("Automatic")
        RULE = "rule", _("Rule")

    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices)
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True, default="")
    rules = models.JSONField(_("conditions"), default=dict, blank=True)
    cluster_index = models.PositiveSmallIntegerField(_("cluster"), null=True, blank=True)
    centroid = models.JSONField(_("centroid (standardised)"), default=list, blank=True)
    size = models.PositiveIntegerField(_("size"), default=0)
    summary = models.JSONField(_("summary"), default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["kind", "cluster_index", "name", "pk"]
        verbose_name = _("segment")
        verbose_name_plural = _("segments")

    def __str__(self) -> str:
        return self.display_name

    # An automatic segment's name and description are built when shown, in the reader's language, from
    # the codes clustering stored (analytics.labels); a rule segment's are the analyst's own words.
    @property
    def display_name(self) -> str:
        label = labels.segment_label(self.kind, self.name, self.description, self.summary)
        return labels.label_name(label) if label else self.name

    @property
    def display_description(self) -> str:
        label = labels.segment_label(self.kind, self.name, self.description, self.summary)
        return labels.label_description(label) if label else self.description


class CustomerProfile(StoreOwned):
    """One customer's computed profile: RFM, value, affinities, habits, churn risk and interests.

    Affinity JSON maps a category path (or brand) to its share of the customer's time-decayed
    interest (the full vector sums to 1; only the top entries are stored). See ``analytics.profiles``
    for every formula.
    """

    customer = models.OneToOneField(
        "activity.Customer", on_delete=models.CASCADE, related_name="profile", verbose_name=_("customer")
    )
    run = models.ForeignKey(ProfileRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # RFM
    recency_days = models.FloatField(_("days since last purchase"), null=True, blank=True)
    frequency = models.PositiveIntegerField(_("orders"), default=0)
    monetary = models.FloatField(_("revenue"), default=0.0)
    r_score = models.PositiveSmallIntegerField(_("R score"), default=1)
    f_score = models.PositiveSmallIntegerField(_("F score"), default=1)
    m_score = models.PositiveSmallIntegerField(_("M score"), default=1)
    lifetime_value = models.FloatField(_("lifetime value"), default=0.0)
    aov = models.FloatField(_("average order value"), null=True, blank=True)
    first_seen = models.DateTimeField(_("first event"), null=True, blank=True)
    last_seen = models.DateTimeField(_("last event"), null=True, blank=True)
    last_purchase_at = models.DateTimeField(_("last purchase"), null=True, blank=True)
    # Affinities
    category_affinity = models.JSONField(_("category affinity"), default=dict, blank=True)
    brand_affinity = models.JSONField(_("brand affinity"), default=dict, blank=True)
    price_band = models.CharField(_("price band"), max_length=8, choices=PriceBand.choices, blank=True, default="")
    price_ratio = models.FloatField(_("price ratio to category median"), null=True, blank=True)
    # Habits
    events = models.PositiveIntegerField(_("events"), default=0)
    dow_histogram = models.JSONField(_("events by day of week (Mon..Sun)"), default=list, blank=True)
    hour_histogram = models.JSONField(_("events by hour"), default=list, blank=True)
    sessions = models.PositiveIntegerField(_("sessions"), default=0)
    mean_session_events = models.FloatField(_("events per session"), null=True, blank=True)
    views_per_purchase = models.FloatField(_("views per purchase"), null=True, blank=True)
    # Churn
    median_gap_days = models.FloatField(_("usual days between orders"), null=True, blank=True)
    churn_risk = models.FloatField(_("churn risk"), default=0.0)
    # Interests and segments
    predicted_interests = models.JSONField(_("predicted next interests"), default=list, blank=True)
    auto_segment = models.ForeignKey(
        Segment, null=True, blank=True, on_delete=models.SET_NULL, related_name="auto_members"
    )
    segment_ids = models.JSONField(_("segments"), default=list, blank=True)
    computed_at = models.DateTimeField(_("computed"), default=timezone.now)

    class Meta:
        ordering = ["customer_id"]
        verbose_name = _("customer profile")
        verbose_name_plural = _("customer profiles")
        indexes = [models.Index(fields=["store", "monetary"], name="profile_store_monetary_idx")]

    def __str__(self) -> str:
        return f"profile of customer #{self.customer_id}"


class SegmentExport(StoreOwned):
    """A log line for every CSV export of a segment: who, when, which segment, how many rows, which fields."""

    segment = models.ForeignKey(Segment, null=True, on_delete=models.SET_NULL, related_name="exports")
    segment_name = models.CharField(_("segment name"), max_length=200)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    fields = models.JSONField(_("fields"), default=list)
    row_count = models.PositiveIntegerField(_("rows"), default=0)
    created_at = models.DateTimeField(_("exported"), default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("segment export")
        verbose_name_plural = _("segment exports")

    def __str__(self) -> str:
        return f"{self.segment_name} ({self.row_count} rows)"


class DPRelease(StoreOwned):
    """One release of noisy figures: the privacy ledger (what was released, when, by whom, at what ε).

    A page reloaded on the same data version finds its row and shows the stored figures again, so
    reloading spends nothing and reveals nothing new. ``values`` holds the noisy counts before the
    threshold (the threshold is post-processing, applied when shown). ``subject`` names what was
    asked: a segment id, or a hash of an audience query; ``data_version`` identifies the data the
    figures were computed from (profile run, profile count, segment states, ε).
    """

    class Kind(models.TextChoices):
        SEGMENTS = "segments", _("Segments page")
        SEGMENT = "segment", _("Segment detail")
        AUDIENCE = "audience", _("Audience size")

    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    subject = models.CharField(_("subject"), max_length=64, blank=True, default="")
    data_version = models.CharField(_("data version"), max_length=64)
    epsilon = models.FloatField(_("epsilon spent"))
    cell_epsilon = models.FloatField(_("epsilon per count"))
    cells = models.PositiveIntegerField(_("noisy cells"), default=0)
    values = models.JSONField(_("noisy values"), default=dict)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(_("released"), default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("privacy release")
        verbose_name_plural = _("privacy releases")
        constraints = [
            models.UniqueConstraint(fields=["store", "kind", "subject", "data_version"], name="dprelease_unique")
        ]
        indexes = [models.Index(fields=["store", "created_at"], name="dprelease_store_created_idx")]

    def __str__(self) -> str:
        return f"{self.kind} {self.subject} ε={self.epsilon:g}"
