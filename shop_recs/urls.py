"""Root URLs: the dashboard, the admin, REST API v1 and its documentation."""

from csp.decorators import csp_exempt
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from shop_recs.dashboard import errors as dashboard_errors
from shop_recs.dashboard import settings_views
from shop_recs.platform import health, metrics

# Styled dashboard error pages when DEBUG is off (API paths keep their JSON errors): shop_recs.dashboard.errors.
handler403 = dashboard_errors.handler403
handler404 = dashboard_errors.handler404
handler500 = dashboard_errors.handler500

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    # Prometheus scrape (allowed addresses or the METRICS_TOKEN bearer token; docs/operations.md "Metrics").
    path("metrics", metrics.metrics_view, name="metrics"),
    # The API before the dashboard and admin: routes are tried in order and the API is the hot path.
    path("api/v1/", include("shop_recs.api_urls")),
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    # An invitation link (Settings → Members): outside /s/<store>/, since the invitee is not a member yet.
    path("invite/<str:token>/", settings_views.accept_invitation, name="accept_invitation"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/schema/", SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]), name="schema"),
    path(
        "api/docs/",
        csp_exempt()(
            SpectacularSwaggerView.as_view(url_name="schema", authentication_classes=[], permission_classes=[])
        ),
        name="api-docs",
    ),
    path(
        "api/redoc/",
        csp_exempt()(SpectacularRedocView.as_view(url_name="schema", authentication_classes=[], permission_classes=[])),
        name="api-redoc",
    ),
    # Store-scoped areas owned by other apps, mounted under the dashboard's /s/<store_slug>/ prefix.
    path("s/<slug:store_slug>/jobs/", include("shop_recs.training.urls")),
    path("s/<slug:store_slug>/imports/", include("shop_recs.imports.urls")),
    path("s/<slug:store_slug>/search/", include("shop_recs.search.urls")),
    path("s/<slug:store_slug>/insights/", include("analytics.urls")),
    path("s/<slug:store_slug>/recommendations/", include("shop_recs.serving.urls")),
    path("s/<slug:store_slug>/ads/", include("shop_recs.ads.urls")),
    path("s/<slug:store_slug>/evaluation/", include("analytics.evaluation.urls")),
    path("s/<slug:store_slug>/experiments/", include("analytics.experiments.urls")),
    path("", include("shop_recs.dashboard.urls")),
]
