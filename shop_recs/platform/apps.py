from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PlatformConfig(AppConfig):
    """Jobs, caches, health and the record of periodic (beat) runs."""

    name = "shop_recs.platform"
    label = "platform"
    verbose_name = _("Platform")

    def ready(self) -> None:
        from celery.signals import worker_init

        from shop_recs.platform.periodic import connect_signals
        from shop_recs.platform.requestid import connect_celery_signals

        connect_signals()
        # Task messages carry the sending request's id; a worker binds it while the task runs and its
        # log lines carry it (JSON with LOG_FORMAT=json). Web processes and workers both load this app.
        connect_celery_signals()
        # A Celery worker's main process serves its pool's job metrics (METRICS_WORKER_PORT; 0 = off).
        worker_init.connect(_start_worker_exporter, dispatch_uid="shop_recs.platform.metrics.worker_exporter")


def _start_worker_exporter(**kwargs: object) -> None:
    # Imported when a worker starts: app loading must not import prometheus_client's metrics early.
    from shop_recs.platform.metrics import start_worker_exporter

    start_worker_exporter()
