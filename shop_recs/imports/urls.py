"""Included by the root URLconf as ``s/<slug:store_slug>/imports/`` with namespace ``imports``."""

from django.urls import path

from shop_recs.imports import views

app_name = "imports"

urlpatterns = [
    path("", views.index, name="index"),
    path("<int:job_id>/", views.detail, name="detail"),
    path("<int:job_id>/status/", views.status, name="status"),
]
