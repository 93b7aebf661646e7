from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AdsConfig(AppConfig):
    name = "shop_recs.ads"
    label = "ads"
    verbose_name = _("Ads")

    def ready(self) -> None:
        from shop_recs.ads.eligibility import connect_signals

        connect_signals()
        from shop_recs.ads import visitors  # imports models: only once the registry is ready

        visitors.connect_signals()
        # A campaign never outlives its target segment as an untargeted one (it is paused first).
        from django.db.models.signals import pre_delete

        from shop_recs.ads.segment_guard import pause_targeting_campaigns

        pre_delete.connect(pause_targeting_campaigns, sender="analytics.Segment", dispatch_uid="ads.segment_guard")
        # Forgetting and merging customers (activity.erasure): ads's rows about them.
        from shop_recs.activity import erasure
        from shop_recs.ads import receivers

        erasure.customer_erasing.connect(receivers.erase_customer_rows, dispatch_uid="ads.erase_customer")
        erasure.customers_merging.connect(receivers.merge_customer_rows, dispatch_uid="ads.merge_customers")
