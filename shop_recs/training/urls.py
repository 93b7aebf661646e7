"""Jobs page URLs; the lead includes them under ``s/<slug:store_slug>/jobs/``."""

from django.urls import path

from shop_recs.training import views

app_name = "recommend"

urlpatterns = [
    path("", views.jobs, name="jobs"),
    path("start/", views.start, name="start"),
    path("schedule/", views.save_schedule, name="schedule"),
    path("runs/<int:run_id>/status/", views.run_status, name="run_status"),
    path("versions/<int:version_id>/activate/", views.activate, name="activate"),
    path("versions/<int:version_id>/rollback/", views.rollback, name="rollback"),
]
