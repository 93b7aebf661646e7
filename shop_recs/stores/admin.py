"""Admin for tenancy models.

A non-superuser staff member sees only the stores they belong to, and the memberships and API keys
of those stores. Merchants may change their stores and memberships; analysts only view. API keys
are read-only here (the dashboard creates them) apart from the "revoke" action, and the key hash is
never displayed.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from shop_recs.stores.admin_base import member_store_ids
from shop_recs.stores.models import ApiKey, Membership, Store


class _MembershipBasedAdmin(admin.ModelAdmin):
    """Permissions from store membership instead of Django model permissions."""

    store_field = "store"

    def _store_id(self, obj) -> int:
        return obj.pk if self.store_field == "pk" else getattr(obj, f"{self.store_field}_id")

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            return qs
        lookup = "pk__in" if self.store_field == "pk" else f"{self.store_field}__in"
        return qs.filter(**{lookup: member_store_ids(request.user)})

    def has_module_permission(self, request) -> bool:
        return (
            request.user.is_active
            and request.user.is_staff
            and (request.user.is_superuser or bool(member_store_ids(request.user)))
        )

    def has_view_permission(self, request, obj=None) -> bool:
        if request.user.is_superuser:
            return True
        ids = member_store_ids(request.user)
        return bool(ids) and (obj is None or self._store_id(obj) in ids)

    def has_change_permission(self, request, obj=None) -> bool:
        if request.user.is_superuser:
            return True
        ids = member_store_ids(request.user, merchant=True)
        return bool(ids) and (obj is None or self._store_id(obj) in ids)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]


@admin.register(Store)
class StoreAdmin(_MembershipBasedAdmin):
    store_field = "pk"
    list_display = ["name", "slug", "currency", "timezone", "created_at"]
    search_fields = ["name", "slug"]
    list_filter = ["currency"]
    readonly_fields = ["created_at"]
    inlines = [MembershipInline]

    def get_prepopulated_fields(self, request, obj=None):
        return {"slug": ["name"]} if obj is None else {}

    def get_readonly_fields(self, request, obj=None):
        # The slug is in every dashboard URL and bookmark; only a superuser may rename it.
        if obj is not None and not request.user.is_superuser:
            return ["slug", "created_at"]
        return ["created_at"]

    def has_add_permission(self, request) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser


@admin.register(Membership)
class MembershipAdmin(_MembershipBasedAdmin):
    list_display = ["user", "store", "role", "created_at"]
    list_filter = ["role", ("store", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["user__username", "user__email", "store__name", "store__slug"]
    list_select_related = ["user", "store"]
    raw_id_fields = ["user"]
    readonly_fields = ["created_at"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "store" and not request.user.is_superuser:
            kwargs["queryset"] = Store.objects.filter(pk__in=member_store_ids(request.user, merchant=True))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_add_permission(self, request) -> bool:
        return request.user.is_superuser or bool(member_store_ids(request.user, merchant=True))

    def has_delete_permission(self, request, obj=None) -> bool:
        return self.has_change_permission(request, obj)


@admin.register(ApiKey)
class ApiKeyAdmin(_MembershipBasedAdmin):
    """Read-only, no hash anywhere; merchants (and superusers) may revoke through the action."""

    list_display = ["name", "store", "kind", "display_prefix", "created_at", "last_used_at", "is_active_display"]
    list_filter = [
        ("store", admin.RelatedOnlyFieldListFilter),
        "kind",
        ("revoked_at", admin.EmptyFieldListFilter),
    ]
    search_fields = ["name", "prefix", "store__name"]
    list_select_related = ["store", "created_by"]
    fields = [
        "name",
        "store",
        "kind",
        "display_prefix",
        "allowed_origins",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
        "revoked_by",
    ]
    readonly_fields = fields
    actions = ["revoke_keys"]

    @admin.display(description=_("prefix"), ordering="prefix")
    def display_prefix(self, obj: ApiKey) -> str:
        return obj.display_prefix

    @admin.display(description=_("active"), boolean=True, ordering="revoked_at")
    def is_active_display(self, obj: ApiKey) -> bool:
        return obj.is_active

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_revoke_permission(self, request) -> bool:
        return request.user.is_superuser or bool(member_store_ids(request.user, merchant=True))

    @admin.action(description=_("Revoke selected API keys"), permissions=["revoke"])
    def revoke_keys(self, request, queryset):
        if not request.user.is_superuser:
            # An analyst of one store who is a merchant of another must not revoke the first's keys.
            queryset = queryset.filter(store_id__in=member_store_ids(request.user, merchant=True))
        count = 0
        for key in queryset.filter(revoked_at__isnull=True):
            key.revoke(request.user)
            count += 1
        self.message_user(request, _("%(count)d key(s) revoked.") % {"count": count}, messages.SUCCESS)
