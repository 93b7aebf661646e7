from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from shop_recs.stores.admin_base import StoreScopedAdmin
from shop_recs.training.activation import activate_version
from shop_recs.training.errors import TrainingError
from shop_recs.training.models import ActivationRecord, ActivationSource, ModelVersion, TrainingRun, TrainingSchedule


@admin.register(TrainingRun)
class TrainingRunAdmin(StoreScopedAdmin):
    list_display = ("id", "store", "status", "stage", "progress", "created_by", "created_at", "finished_at")
    list_filter = ("status", "store")
    readonly_fields = ("timings", "data_stats", "metrics", "gate", "error", "attempts", "heartbeat_at")


@admin.register(ModelVersion)
class ModelVersionAdmin(StoreScopedAdmin):
    """Versions come from training and go live only through the activation service: ``is_active`` is
    read-only here, and the "Make live" action asks for confirmation and records an admin activation
    (merchant-only, like everywhere else)."""

    list_display = ("id", "store", "algorithm", "is_active", "activated_at", "corrupt_at", "size_bytes", "created_at")
    list_filter = ("is_active", "algorithm", "store")
    readonly_fields = (
        "store",
        "run",
        "algorithm",
        "params",
        "artifact_path",
        "checksum",
        "size_bytes",
        "n_users",
        "n_items",
        "metrics",
        "is_active",
        "activated_at",
        "activated_by",
        "activation_reason",
        "corrupt_at",
        "created_at",
    )
    actions = ["make_live"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        # Deleting the live version would leave the store without a model: roll back first.
        return super().has_delete_permission(request, obj) and not (obj is not None and obj.is_active)

    @admin.action(description=gettext_lazy("Make the selected version live"))
    def make_live(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, _("Select exactly one version to make live."), messages.ERROR)
            return None
        version = queryset.get()
        if request.POST.get("confirm") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "title": _("Make version %(id)s live?") % {"id": version.pk},
                "version": version,
                "active": ModelVersion.all_stores.filter(store_id=version.store_id, is_active=True).first(),
                "opts": self.model._meta,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, "admin/training/modelversion/make_live_confirm.html", context)
        try:
            activate_version(version, user=request.user, reason="made live in the admin", source=ActivationSource.ADMIN)
        except TrainingError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(request, _("Version %(id)s is now live.") % {"id": version.pk}, messages.SUCCESS)
        return None


@admin.register(ActivationRecord)
class ActivationRecordAdmin(StoreScopedAdmin):
    """The activation history, read-only: it is written only by the activation service."""

    list_display = ("created_at", "store", "version", "previous_version", "source", "user", "reason")
    list_filter = ("source",)
    readonly_fields = ("store", "version", "previous_version", "source", "user", "reason", "details", "created_at")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


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
