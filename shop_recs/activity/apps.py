from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ActivityConfig(AppConfig):
    name = "shop_recs.activity"
    verbose_name = _("Customer activity")

    def ready(self) -> None:
        from shop_recs.activity import changes

        changes.connect_signals()
