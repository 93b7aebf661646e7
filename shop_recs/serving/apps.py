from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ServingConfig(AppConfig):
    """Serving: store rules, the served-list log, experiments, and the recommendation API."""

    name = "shop_recs.serving"
    verbose_name = _("Recommendations")

    def ready(self) -> None:
        # Imported here, not at module top: an AppConfig module is imported before the app registry
        # is ready, and these modules import models. Training sends the signals and never imports
        # serving; serving listens.
        from shop_recs.serving import fbt, runtime
        from shop_recs.training.activation import version_activated
        from shop_recs.training.models import ModelVersion, TrainingRun
        from shop_recs.training.services import model_trained

        def forget_active(sender, store_id: int, **kwargs) -> None:
            """A new active version: this process serves it from its next request."""
            runtime.forget_active_version(store_id)

        def rebuild_fbt(sender, store, **kwargs) -> None:
            """Serving never computes frequently-bought-together on a request: rebuild it with every model."""
            fbt.build_fbt(store)

        # weak=False: the receivers are local functions, nothing else keeps them alive.
        version_activated.connect(
            forget_active, sender=ModelVersion, weak=False, dispatch_uid="serving.forget_active_version"
        )
        model_trained.connect(rebuild_fbt, sender=TrainingRun, weak=False, dispatch_uid="serving.rebuild_fbt")
