"""Dashboard URLs. Store pages live under ``/s/<store_slug>/`` so links are bookmarkable per store."""

from django.urls import include, path

from shop_recs.dashboard import settings_views, tasks_views, views

app_name = "dashboard"

store_patterns = [
    path("", views.overview, name="overview"),
    path("catalog/", views.catalog, name="catalog"),
    # path: ids stored before the id rule (docs/api.md, "Validation") may hold "/"; pages must still link.
    path("catalog/<path:sku>/", views.product_detail, name="product_detail"),
    path("customers/", views.customers, name="customers"),
    # Before customer_detail, with path converters: an old id holding "/" still reaches its actions.
    path("customers/<path:external_id>/erase/", views.erase_customer, name="erase_customer"),
    path("customers/<path:external_id>/events/delete/", views.delete_customer_events, name="delete_customer_events"),
    path("customers/<path:external_id>/", views.customer_detail, name="customer_detail"),
    path("tasks/", tasks_views.tasks, name="tasks"),
    path("tasks/status/", tasks_views.task_status, name="task_status"),
    path("settings/keys/", views.api_keys, name="api_keys"),
    path("settings/keys/<int:key_id>/revoke/", views.revoke_api_key, name="revoke_api_key"),
    path("settings/store/", settings_views.store_settings, name="store_settings"),
    path("settings/members/", views.members, name="members"),
    path("settings/members/invite/", settings_views.invite_member, name="invite_member"),
    path(
        "settings/invitations/<int:invitation_id>/revoke/", settings_views.revoke_invitation, name="revoke_invitation"
    ),
    path("settings/members/<int:membership_id>/role/", views.change_member_role, name="change_member_role"),
    path("settings/members/<int:membership_id>/remove/", views.remove_member, name="remove_member"),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("s/<slug:store_slug>/", include(store_patterns)),
]
