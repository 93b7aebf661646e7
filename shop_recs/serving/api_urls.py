"""Serving routes of REST API v1 (mounted under /api/v1/)."""

from django.urls import path

from shop_recs.serving import api_views

urlpatterns = [
    path(
        "recommendations/customer/<str:external_id>",
        api_views.CustomerRecommendationsView.as_view(),
        name="api-recs-customer",
    ),
    path("recommendations/session", api_views.SessionRecommendationsView.as_view(), name="api-recs-session"),
    path("products/<str:sku>/similar", api_views.SimilarProductsView.as_view(), name="api-product-similar"),
    path(
        "products/<str:sku>/frequently-bought-together",
        api_views.FrequentlyBoughtTogetherView.as_view(),
        name="api-product-fbt",
    ),
    path("popular", api_views.PopularView.as_view(), name="api-popular"),
    path("trending", api_views.TrendingView.as_view(), name="api-trending"),
]
