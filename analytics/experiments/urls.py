"""Experiments pages; mounted under ``s/<slug:store_slug>/experiments/``."""

from django.urls import path

from analytics.experiments import views

app_name = "experiments"

urlpatterns = [
    path("", views.index, name="index"),
    path("new/", views.create, name="create"),
    path("power/", views.power_estimate, name="power"),
    path("<int:experiment_id>/", views.detail, name="detail"),
    path("<int:experiment_id>/start/", views.start, name="start"),
    path("<int:experiment_id>/stop/", views.stop, name="stop"),
    path("<int:experiment_id>/promote/", views.promote, name="promote"),
]
