from django.contrib import admin

from shop_recs.recommend.models import ModelVersion, TrainingRun
from shop_recs.stores.admin_base import StoreScopedAdmin


@admin.register(TrainingRun)
class TrainingRunAdmin(StoreScopedAdmin):
    list_display = ("id", "store", "status", "stage", "progress", "created_by", "created_at", "finished_at")
    list_filter = ("status", "store")
    readonly_fields = ("timings", "data_stats", "metrics", "gate", "error", "attempts", "heartbeat_at")


@admin.register(ModelVersion)
class ModelVersionAdmin(StoreScopedAdmin):
    list_display = ("id", "store", "algorithm", "is_active", "activated_at", "corrupt_at", "size_bytes", "created_at")
    list_filter = ("is_active", "algorithm", "store")
    readonly_fields = ("artifact_path", "checksum", "size_bytes", "metrics", "run")
