from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PlatformConfig(AppConfig):
    """Jobs, caches, health and the record of periodic (beat) runs."""

    name = "shop_recs.platform"
    label = "platform"
    verbose_name = _("Platform")

    def ready(self) -> None:
        from shop_recs.platform.periodic import connect_signals

        connect_signals()
