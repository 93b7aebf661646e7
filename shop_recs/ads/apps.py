from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AdsConfig(AppConfig):
    name = "shop_recs.ads"
    label = "ads"
    verbose_name = _("Ads")

    def ready(self) -> None:
        from shop_recs.ads.eligibility import connect_signals

        connect_signals()
