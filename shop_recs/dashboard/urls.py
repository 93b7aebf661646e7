from django.urls import path

from shop_recs.dashboard import views

app_name = "dashboard"

urlpatterns = [
    path("", views.home, name="home"),
]
