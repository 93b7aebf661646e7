from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ApiConfig(AppConfig):
    """The REST API's shared layer: one authenticator, store scope, errors, params, idempotency."""

    name = "shop_recs.api"
    verbose_name = _("API")
