from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CatalogConfig(AppConfig):
    name = "shop_recs.catalog"
    verbose_name = _("Catalog")
