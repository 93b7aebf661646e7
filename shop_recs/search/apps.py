from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SearchConfig(AppConfig):
    name = "shop_recs.search"
    verbose_name = _("Search")

    def ready(self) -> None:
        from shop_recs.search.services import connect_signals

        connect_signals()
