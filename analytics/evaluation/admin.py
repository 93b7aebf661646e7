"""Admin registration: every model here is store-owned, so all use ``StoreScopedAdmin``."""

from __future__ import annotations

from django.contrib import admin

from analytics.evaluation.models import EvaluationRun, TuningJob, TuningTrial
from shop_recs.stores.admin_base import StoreScopedAdmin
from shop_recs.training.models import EvaluationSettings, StoreTrainingConfig


@admin.register(EvaluationRun)
class EvaluationRunAdmin(StoreScopedAdmin):
    list_display = ("id", "store", "protocol", "status", "progress", "auto_tune", "created_at")
    list_filter = ("status", "protocol")
    readonly_fields = ("results", "split_info", "timings", "error", "started_at", "finished_at", "heartbeat_at")


class TuningTrialInline(admin.TabularInline):
    model = TuningTrial
    extra = 0
    can_delete = False
    fields = ("algorithm", "params", "status", "score", "seconds", "error")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(TuningJob)
class TuningJobAdmin(StoreScopedAdmin):
    list_display = ("id", "store", "metric", "status", "progress", "n_trials", "best", "created_at")
    list_filter = ("status",)
    readonly_fields = ("leaderboard", "split_info", "timings", "error", "dispatch", "promoted_at", "promoted_by")
    inlines = [TuningTrialInline]


@admin.register(EvaluationSettings)
class EvaluationSettingsAdmin(StoreScopedAdmin):
    list_display = ("store", "max_metric_drop", "updated_at")


@admin.register(StoreTrainingConfig)
class StoreTrainingConfigAdmin(StoreScopedAdmin):
    list_display = ("store", "algorithms", "source_job", "updated_at")
