"""The store's catalog: a category tree and products."""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from shop_recs.stores.scoping import StoreOwned

CATEGORY_PATH_SEPARATOR = " > "


class Category(StoreOwned):
    """A node of the store's category tree. ``path`` is the full name path, unique per store."""

    name = models.CharField(_("name"), max_length=200)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children")
    # Denormalised "Home > Kitchen > Mugs": imports and the API address categories by path, and
    # listing a subtree is a prefix match instead of a recursive query.
    path = models.CharField(_("path"), max_length=1000)

    class Meta:
        ordering = ["path"]
        verbose_name = _("category")
        verbose_name_plural = _("categories")
        constraints = [models.UniqueConstraint(fields=["store", "path"], name="category_store_path_unique")]

    def __str__(self) -> str:
        return self.path

    @property
    def depth(self) -> int:
        return self.path.count(CATEGORY_PATH_SEPARATOR)


class Product(StoreOwned):
    """A sellable item. ``sku`` is the shop's own identifier and is unique within the store."""

    sku = models.CharField(_("SKU"), max_length=100)
    title = models.CharField(_("title"), max_length=500)
    description = models.TextField(_("description"), blank=True, default="")
    category = models.ForeignKey(
        Category, null=True, blank=True, on_delete=models.SET_NULL, related_name="products", verbose_name=_("category")
    )
    brand = models.CharField(_("brand"), max_length=200, blank=True, default="")
    tags = models.JSONField(_("tags"), default=list, blank=True)
    price = models.DecimalField(_("price"), max_digits=12, decimal_places=2, null=True, blank=True)
    currency = models.CharField(_("currency"), max_length=3, blank=True, default="")
    image_url = models.URLField(_("image URL"), max_length=1000, blank=True, default="")
    # The product's page in the shop: a recommendation card links to it without another lookup.
    url = models.URLField(_("product page URL"), max_length=1000, blank=True, default="")
    is_active = models.BooleanField(_("active"), default=True)
    in_stock = models.BooleanField(_("in stock"), default=True)
    attributes = models.JSONField(_("attributes"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["sku"]
        verbose_name = _("product")
        verbose_name_plural = _("products")
        constraints = [models.UniqueConstraint(fields=["store", "sku"], name="product_store_sku_unique")]
        indexes = [models.Index(fields=["store", "is_active", "in_stock"], name="product_store_active_idx")]

    def __str__(self) -> str:
        return f"{self.sku} · {self.title}"
