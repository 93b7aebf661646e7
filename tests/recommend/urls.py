"""The root URLconf plus the Jobs URLs where the lead will mount them (until they are wired in)."""

from django.urls import include, path

from shop_recs.urls import urlpatterns as root_patterns

urlpatterns = [
    path("s/<slug:store_slug>/jobs/", include("shop_recs.recommend.urls")),
    *root_patterns,
]
