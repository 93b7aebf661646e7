from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class StoresConfig(AppConfig):
    name = "shop_recs.stores"
    verbose_name = _("Stores and access")

    def ready(self) -> None:
        # Bind @shared_task functions to the project's Celery app as soon as Django is up.
        from shop_recs.celery import app  # noqa: F401
