"""Evaluation page URLs; mounted under ``s/<slug:store_slug>/evaluation/``."""

from django.urls import path

from analytics.evaluation import views

app_name = "evaluation"

urlpatterns = [
    path("", views.index, name="index"),
    path("runs/start/", views.start_run, name="start_run"),
    path("runs/<int:eval_run_id>/", views.run_detail, name="run"),
    path("runs/<int:eval_run_id>/status/", views.run_status, name="run_status"),
    path("tuning/start/", views.start_tuning, name="start_tuning"),
    path("tuning/<int:tuning_job_id>/", views.tuning_detail, name="tuning"),
    path("tuning/<int:tuning_job_id>/status/", views.tuning_status, name="tuning_status"),
    path("tuning/<int:tuning_job_id>/promote/", views.promote, name="promote"),
    path("settings/", views.update_settings, name="settings"),
]
