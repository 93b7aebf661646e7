from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TrainingConfig(AppConfig):
    """Training runs, model versions, schedules, the training configuration and activation."""

    name = "shop_recs.training"
    verbose_name = _("Training")
