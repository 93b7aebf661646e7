from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AnalyticsConfig(AppConfig):
    name = "analytics"
    verbose_name = _("Analytics")

    def ready(self) -> None:
        # Imported here: the app registry must be ready before modules that import models load.
        from analytics import receivers
        from shop_recs.activity import erasure

        erasure.customer_erasing.connect(receivers.erase_customer_rows, dispatch_uid="analytics.erase_customer")
        erasure.customers_merging.connect(receivers.merge_customer_rows, dispatch_uid="analytics.merge_customers")
        erasure.events_deleting.connect(receivers.delete_event_rows, dispatch_uid="analytics.delete_events")

        from analytics.views import customer_profile_panel
        from shop_recs.dashboard import customer_panels

        customer_panels.register("profile", customer_profile_panel)
