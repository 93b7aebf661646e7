"""REST API v1 for shop frontends. Each app contributes its routes."""

from django.urls import include, path

urlpatterns = [
    # The read endpoints a shop calls on every page view first: routes are tried in order.
    path("", include("shop_recs.serving.api_urls")),
    path("", include("shop_recs.search.api_urls")),
    path("", include("shop_recs.catalog.api_urls")),
    path("", include("shop_recs.activity.api_urls")),
    path("", include("shop_recs.ads.api_urls")),
]
