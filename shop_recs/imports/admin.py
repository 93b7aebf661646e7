from django.contrib import admin

from shop_recs.imports.models import ImportJob
from shop_recs.stores.admin_base import StoreScopedAdmin


@admin.register(ImportJob)
class ImportJobAdmin(StoreScopedAdmin):
    list_display = (
        "id",
        "store",
        "kind",
        "file_name",
        "status",
        "rows_read",
        "rows_imported",
        "rows_skipped",
        "started_at",
    )
    list_filter = ("kind", "status")
    search_fields = ("file_name", "fingerprint")
    date_hierarchy = "started_at"
    list_select_related = ("store", "created_by")
    readonly_fields = (
        "store", "kind", "file_name", "fingerprint", "status", "rows_read", "rows_imported", "rows_skipped",
        "skipped", "report", "errors", "error_count", "message", "started_at", "finished_at", "created_by",
    )  # fmt: skip

    def has_add_permission(self, request) -> bool:
        # Jobs are records of imports that happened; create them by importing, not by hand.
        return False
