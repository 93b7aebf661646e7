"""Recommendations pages (preview, rules); the root URLconf mounts them at ``s/<slug:store_slug>/recommendations/``."""

from django.urls import path

from shop_recs.serving import views

app_name = "recs"

urlpatterns = [
    path("", views.preview, name="preview"),
    path("rules/", views.rules, name="rules"),
    path("lookup/", views.lookup, name="lookup"),
    path("history/", views.change_history, name="history"),
]
