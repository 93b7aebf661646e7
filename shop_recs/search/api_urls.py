"""Search routes of REST API v1 (mounted under /api/v1/)."""

from django.urls import path

from shop_recs.search import api_views

urlpatterns = [
    path("search", api_views.SearchView.as_view(), name="api-search"),
]
