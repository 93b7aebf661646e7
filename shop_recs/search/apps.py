from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SearchConfig(AppConfig):
    name = "shop_recs.search"
    verbose_name = _("Search")

    def ready(self) -> None:
        from shop_recs.search.services import connect_signals

        connect_signals()
        # Forgetting and merging customers (activity.erasure): search's rows about them.
        from shop_recs.activity import erasure
        from shop_recs.search import receivers

        erasure.customer_erasing.connect(receivers.erase_customer_rows, dispatch_uid="search.erase_customer")
        erasure.customers_merging.connect(receivers.merge_customer_rows, dispatch_uid="search.merge_customers")
