from django.contrib import admin

from shop_recs.stores.admin_base import StoreScopedAdmin
from shop_recs.training.models import ModelVersion, TrainingRun, TrainingSchedule


@admin.register(TrainingRun)
class TrainingRunAdmin(StoreScopedAdmin):
    list_display = ("id", "store", "status", "stage", "progress", "created_by", "created_at", "finished_at")
    list_filter = ("status", "store")
    readonly_fields = ("timings", "data_stats", "metrics", "gate", "error", "attempts", "heartbeat_at")


@admin.register(ModelVersion)
class ModelVersionAdmin(StoreScopedAdmin):
    list_display = ("id", "store", "algorithm", "is_active", "activated_at", "corrupt_at", "size_bytes", "created_at")
    list_filter = ("is_active", "algorithm", "store")
    readonly_fields = (
        "artifact_path",
        "checksum",
        "size_bytes",
        "metrics",
        "run",
        "activated_at",
        "activated_by",
        "activation_reason",
    )


@admin.register(TrainingSchedule)
class TrainingScheduleAdmin(StoreScopedAdmin):
    """Merchants edit their store's retraining schedule here until the Jobs page has a form for it."""

    list_display = (
        "store",
        "enabled",
        "daily_hour",
        "interval_hours",
        "next_due_at",
        "last_enqueued_at",
        "last_outcome",
    )
    list_filter = ("enabled",)
    fields = ("store", "enabled", "daily_hour", "interval_hours", "algorithms", "params", "next_due_at")
    readonly_fields = ("last_enqueued_at", "last_run", "last_outcome")

    def get_fields(self, request, obj=None):
        return [*self.fields, *self.readonly_fields]

    def save_model(self, request, obj, form, change):
        # A changed cadence takes effect from now, not from the old slot.
        if (
            change
            and {"daily_hour", "interval_hours"} & set(form.changed_data)
            and "next_due_at" not in form.changed_data
        ):
            obj.next_due_at = None
        super().save_model(request, obj, form, change)
