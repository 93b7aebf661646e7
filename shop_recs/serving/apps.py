from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ServingConfig(AppConfig):
    """Serving: store rules, the served-list log, experiments, and the recommendation API."""

    name = "shop_recs.serving"
    verbose_name = _("Recommendations")
