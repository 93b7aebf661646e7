"""Signed-in dashboard and admin pages say ``Cache-Control: private, no-store`` (issue 12 §8)."""

from __future__ import annotations


def test_dashboard_and_admin_pages_are_not_cacheable(client, store, merchant, api_client, django_user_model):
    django_user_model.objects.filter(pk=merchant.pk).update(is_staff=True)
    client.force_login(merchant)
    for url in ("/", f"/s/{store.slug}/", f"/s/{store.slug}/jobs/", "/admin/"):
        response = client.get(url, follow=True)
        assert response.status_code == 200, url
        directives = {d.strip() for d in response["Cache-Control"].split(",")}
        assert {"private", "no-store"} <= directives, (url, response["Cache-Control"])


def test_the_api_is_left_alone(api_client):
    assert "no-store" not in api_client.get("/api/v1/popular").get("Cache-Control", "")
