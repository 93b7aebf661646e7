"""Customers and what they do: views, searches, cart changes, purchases and ratings."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from shop_recs.stores.scoping import StoreOwned


class Customer(StoreOwned):
    """A shop customer, known by the shop's own id. Holds no PII beyond coarse demographics."""

    external_id = models.CharField(_("external id"), max_length=100)
    country = models.CharField(_("country"), max_length=64, blank=True, default="")
    age_band = models.CharField(_("age band"), max_length=16, blank=True, default="")
    gender = models.CharField(_("gender"), max_length=16, blank=True, default="")
    signup_date = models.DateField(_("signup date"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        ordering = ["external_id"]
        verbose_name = _("customer")
        verbose_name_plural = _("customers")
        constraints = [models.UniqueConstraint(fields=["store", "external_id"], name="customer_store_ext_unique")]

    def __str__(self) -> str:
        return self.external_id


class EventType(models.TextChoices):
    VIEW = "view", _("View")
    SEARCH = "search", _("Search")
    CLICK = "click", _("Click")
    ADD_TO_CART = "add_to_cart", _("Add to cart")
    REMOVE_FROM_CART = "remove_from_cart", _("Remove from cart")
    PURCHASE = "purchase", _("Purchase")
    RATING = "rating", _("Rating")


class Event(StoreOwned):
    """One thing a customer (or an anonymous session) did.

    ``value`` means: quantity for cart events, the unit price paid for purchases (with the quantity
    in ``quantity``), and the rating for ratings.
    """

    # Events are the one append-heavy table (COPY at tens of thousands of rows/s), so its foreign
    # keys are lean on purpose:
    # * db_index=False: the composite indexes below lead with store/customer/product and already
    #   serve every FK lookup; the single-column ones only slowed writes (~1.6x on COPY).
    # * db_constraint=False: Postgres checks each FK with a per-row trigger at commit, which cost
    #   ~2.8x on COPY. Integrity is kept by the only write path (shop_recs.activity.ingest resolves
    #   every id in the same transaction; products are never hard-deleted), and on_delete=CASCADE
    #   is Django's collector, which works without the database constraint.
    store = models.ForeignKey(
        "stores.Store", on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    customer = models.ForeignKey(
        Customer,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="events",
        db_index=False,
        db_constraint=False,
    )
    session_id = models.CharField(_("session id"), max_length=100, blank=True, default="")
    event_type = models.CharField(_("type"), max_length=16, choices=EventType.choices)
    product = models.ForeignKey(
        "catalog.Product",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="events",
        db_index=False,
        db_constraint=False,
    )
    value = models.FloatField(_("value"), null=True, blank=True)
    quantity = models.IntegerField(_("quantity"), null=True, blank=True)
    order_id = models.CharField(_("order id"), max_length=100, blank=True, default="")
    query = models.CharField(_("search query"), max_length=500, blank=True, default="")
    timestamp = models.DateTimeField(_("time"))
    # What led to the event: {"list_id": ..., "ad_id": ..., "placement": ...}; feeds attribution.
    context = models.JSONField(_("context"), null=True, blank=True)
    received_at = models.DateTimeField(_("received"), default=timezone.now)

    class Meta:
        ordering = ["-timestamp"]
        verbose_name = _("event")
        verbose_name_plural = _("events")
        indexes = [
            # "this store's events since T" (training builds, the overview charts).
            models.Index(fields=["store", "timestamp"], name="event_store_time_idx"),
            # "this customer's latest events" (real-time serving, profile pages).
            models.Index(fields=["customer", "-timestamp"], name="event_customer_time_idx"),
            # "events of this product" (product pages, co-purchase mining).
            models.Index(fields=["product", "timestamp"], name="event_product_time_idx"),
            # "the anonymous events of this session" (merging a session into a customer, erasing a
            # customer's sessions). Partial: only anonymous rows pay for it on ingestion.
            models.Index(
                fields=["store", "session_id"],
                name="event_anon_session_idx",
                condition=models.Q(customer__isnull=True),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(customer__isnull=False) | ~models.Q(session_id=""),
                name="event_has_customer_or_session",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.timestamp:%Y-%m-%d %H:%M}"


class ErasureRecord(StoreOwned):
    """The audit line of one erasure, bad-event deletion or merge: what kind, who, when, how many rows.

    Holds nothing about the customer on purpose (no external id, no hash of it): a hash of an id the
    shop can recompute is still personal data, and the record must outlive the person it forgets.
    The API answers with this row's id, which the shop can keep as its proof of erasure.
    """

    class Kind(models.TextChoices):
        ERASE = "erase", _("Customer erased")
        DELETE_EVENTS = "delete_events", _("Events deleted")
        MERGE = "merge", _("Customers merged")

    class Via(models.TextChoices):
        API = "api", _("API")
        DASHBOARD = "dashboard", _("Dashboard")

    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    via = models.CharField(_("via"), max_length=16, choices=Via.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("user"),
    )
    api_key = models.ForeignKey(
        "stores.ApiKey",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("API key"),
    )
    #: Table label -> rows deleted (erasure, event deletion) or moved (merge); zeros included, so the
    #: record shows every table that was looked at.
    row_counts = models.JSONField(_("rows per table"), default=dict)
    created_at = models.DateTimeField(_("time"), default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("erasure record")
        verbose_name_plural = _("erasure records")

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.created_at:%Y-%m-%d %H:%M})"

    @property
    def total_rows(self) -> int:
        return sum(int(n) for n in self.row_counts.values())
