from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RecommendConfig(AppConfig):
    """Migration history only: the models moved to ``training`` and ``serving`` (tables unchanged)."""

    name = "shop_recs.recommend"
    verbose_name = _("Recommendations (history)")
