"""Recommendations pages (preview, rules, placements).

The root URLconf mounts them at ``s/<slug:store_slug>/recommendations/``.
"""

from django.urls import path

from shop_recs.serving import views

app_name = "recs"

urlpatterns = [
    path("", views.preview, name="preview"),
    path("rules/", views.rules, name="rules"),
    path("placements/", views.placements, name="placements"),
    path("placements/<int:placement_id>/", views.placement_edit, name="placement"),
    path("placements/<int:placement_id>/delete/", views.placement_delete, name="placement_delete"),
    path("lookup/", views.lookup, name="lookup"),
    path("history/", views.change_history, name="history"),
]
