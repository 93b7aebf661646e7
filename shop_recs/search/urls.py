"""Search dashboard pages, mounted at /s/<store_slug>/search/."""

from django.urls import path

from shop_recs.search import views

app_name = "search"

urlpatterns = [
    path("", views.insights, name="insights"),
]
