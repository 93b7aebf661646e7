from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ServingConfig(AppConfig):
    """Serving: store rules, the served-list log, experiments, and the recommendation API."""

    name = "shop_recs.serving"
    verbose_name = _("Recommendations")

    def ready(self) -> None:
        # Imported here: an AppConfig module is imported before the app registry is ready, and these
        # modules import models.
        from shop_recs.serving import receivers
        from shop_recs.training.activation import version_activated
        from shop_recs.training.models import ModelVersion, TrainingRun
        from shop_recs.training.services import model_trained

        version_activated.connect(
            receivers.forget_active_version, sender=ModelVersion, dispatch_uid="serving.forget_active_version"
        )
        model_trained.connect(
            receivers.rebuild_frequently_bought_together, sender=TrainingRun, dispatch_uid="serving.rebuild_fbt"
        )
        from django.db.models.signals import post_save

        from shop_recs.stores.models import Store

        post_save.connect(receivers.create_default_placement, sender=Store, dispatch_uid="serving.default_placement")
        # Forgetting and merging customers (activity.erasure): serving's rows and caches of them.
        from shop_recs.activity import erasure

        erasure.customer_erasing.connect(receivers.erase_customer_rows, dispatch_uid="serving.erase_customer")
        erasure.customers_merging.connect(receivers.merge_customer_rows, dispatch_uid="serving.merge_customers")
