"""Activity routes of REST API v1 (mounted under /api/v1/)."""

from django.urls import path

from shop_recs.activity import api_views

urlpatterns = [
    path("events", api_views.EventView.as_view(), name="api-event"),
    path("events/batch", api_views.EventBatchView.as_view(), name="api-event-batch"),
    path("customers/bulk", api_views.CustomerBulkView.as_view(), name="api-customer-bulk"),
    path("customers/<str:external_id>", api_views.CustomerDetailView.as_view(), name="api-customer-detail"),
    path("customers/<str:external_id>/events", api_views.CustomerEventsView.as_view(), name="api-customer-events"),
    path("customers/<str:external_id>/merge", api_views.CustomerMergeView.as_view(), name="api-customer-merge"),
]
