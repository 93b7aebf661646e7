from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AdsConfig(AppConfig):
    name = "analytics.ads"
    label = "ads"
    verbose_name = _("Ads")

    def ready(self) -> None:
        from analytics.ads.eligibility import connect_signals

        connect_signals()
