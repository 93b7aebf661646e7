"""Ads dashboard URLs, mounted under ``s/<slug:store_slug>/ads/``."""

from django.urls import path

from shop_recs.ads import views

app_name = "ads"

urlpatterns = [
    path("", views.campaigns, name="campaigns"),
    path("new/", views.campaign_new, name="campaign_new"),
    path("<int:campaign_id>/", views.campaign_detail, name="campaign_detail"),
    path("<int:campaign_id>/edit/", views.campaign_edit, name="campaign_edit"),
    path("<int:campaign_id>/status/", views.campaign_status, name="campaign_status"),
]
