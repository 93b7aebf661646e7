"""The search query log: one row per query, the raw material of the search insights page."""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from shop_recs.stores.scoping import StoreOwned


class SearchQuery(StoreOwned):
    """One search a shop frontend (or the dashboard's try-it box) ran, with how many results it found.

    ``normalized_query`` (folded, stemmed terms joined by spaces) groups "Headphones" and
    "headphone " together on the insights page; ``n_results`` of 0 marks a merchandising gap.
    """

    query = models.CharField(_("query"), max_length=200)
    normalized_query = models.CharField(_("normalised query"), max_length=200, db_index=False)
    # Lean FK like Event's: the log is append-only and the store/time index serves every read.
    customer = models.ForeignKey(
        "activity.Customer",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
        db_index=False,
        verbose_name=_("customer"),
    )
    session_id = models.CharField(_("session id"), max_length=100, blank=True, default="")
    n_results = models.PositiveIntegerField(_("results"), default=0)
    corrected_query = models.CharField(_("corrected query"), max_length=200, blank=True, default="")
    created_at = models.DateTimeField(_("time"), default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("search query")
        verbose_name_plural = _("search queries")
        indexes = [
            models.Index(fields=["store", "created_at"], name="searchquery_store_time_idx"),
            models.Index(fields=["store", "normalized_query"], name="searchquery_store_norm_idx"),
        ]

    def __str__(self) -> str:
        return self.query
