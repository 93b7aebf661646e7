"""Catalog routes of REST API v1 (mounted under /api/v1/)."""

from django.urls import path

from shop_recs.catalog import api_views

urlpatterns = [
    path("products", api_views.ProductListView.as_view(), name="api-product-list"),
    path("products/bulk", api_views.ProductBulkView.as_view(), name="api-product-bulk"),
    path("products/<str:sku>", api_views.ProductDetailView.as_view(), name="api-product-detail"),
    path("products/<str:sku>/deactivate", api_views.ProductDeactivateView.as_view(), name="api-product-deactivate"),
]
