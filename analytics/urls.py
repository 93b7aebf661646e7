"""Insights URLs, mounted under ``s/<slug:store_slug>/insights/``."""

from django.urls import path

from analytics import views

app_name = "analytics"

urlpatterns = [
    path("segments/", views.segments, name="segments"),
    path("segments/new/", views.segment_new, name="segment_new"),
    path("segments/audience/", views.audience, name="audience"),
    path("segments/rebuild/", views.rebuild_segments, name="rebuild_segments"),
    path("segments/<int:segment_id>/", views.segment_detail, name="segment_detail"),
    path("segments/<int:segment_id>/edit/", views.segment_edit, name="segment_edit"),
    path("segments/<int:segment_id>/duplicate/", views.segment_duplicate, name="segment_duplicate"),
    path("segments/<int:segment_id>/delete/", views.segment_delete, name="segment_delete"),
    path("segments/<int:segment_id>/export/", views.segment_export, name="segment_export"),
    path("profiles/run/", views.start_run, name="start_run"),
    path("profiles/runs/<int:run_id>/status/", views.run_status, name="run_status"),
    # path: ids stored before the id rule may hold "/" (docs/api.md, "Validation").
    path("customers/<path:external_id>/", views.customer_profile, name="customer_profile"),
    path("privacy/", views.privacy_settings, name="privacy"),
]
