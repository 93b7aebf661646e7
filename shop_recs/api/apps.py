from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ApiConfig(AppConfig):
    """The REST API's shared layer: one authenticator, store scope, errors, params, idempotency."""

    name = "shop_recs.api"
    verbose_name = _("API")

    def ready(self) -> None:
        # Imported here, not at module level: the models (and auth, which reads them) can only be
        # imported once the app registry is ready. Connecting from api keeps the dependency pointing
        # down (api -> stores): stores must not import api to drop a revoked key from the cache.
        from django.db.models.signals import post_delete, post_save

        from shop_recs.api.auth import forget_saved_api_key
        from shop_recs.stores.models import ApiKey

        post_save.connect(forget_saved_api_key, sender=ApiKey, dispatch_uid="api.forget_saved_api_key.save")
        post_delete.connect(forget_saved_api_key, sender=ApiKey, dispatch_uid="api.forget_saved_api_key.delete")
        # Which browser origins may read API answers (publishable keys' allowed origins): shop_recs.api.cors.
        from corsheaders.signals import check_request_enabled

        from shop_recs.api.cors import allow_cors

        check_request_enabled.connect(allow_cors, dispatch_uid="api.allow_cors")
