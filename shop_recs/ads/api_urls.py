"""Ad-serving routes of REST API v1 (mounted under /api/v1/)."""

from django.urls import path

from shop_recs.ads import api_views

urlpatterns = [
    path("ads", api_views.AdsView.as_view(), name="api-ads"),
    path("ads/impressions/<uuid:impression_id>/click", api_views.AdClickView.as_view(), name="api-ad-click"),
]
