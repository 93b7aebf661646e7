"""The admin shows a staff user only their own stores' rows, and never an API key's hash."""

from __future__ import annotations

import pytest

from shop_recs.stores.models import ApiKey, Membership

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_merchant(make_user, store):
    return make_user("staffer", store, "merchant", is_staff=True)


@pytest.fixture
def staff_analyst(make_user, store):
    return make_user("staff-analyst", store, "analyst", is_staff=True)


@pytest.mark.parametrize(
    ("url", "mine", "theirs"),
    [
        ("/admin/catalog/product/", "Blue mug", "Secret beta product"),
        ("/admin/activity/customer/", "c1", "beta-cust"),
        ("/admin/activity/event/", "c1", "beta-cust"),
        ("/admin/stores/store/", "Alpha Shop", "Beta Shop"),
    ],
)
def test_changelists_show_only_own_stores(client, staff_merchant, shop_data, url, mine, theirs):
    client.force_login(staff_merchant)
    response = client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert mine in html
    assert theirs not in html


def test_other_stores_objects_are_not_reachable(client, staff_merchant, shop_data):
    client.force_login(staff_merchant)
    beta_product = shop_data["beta_product"]
    response = client.get(f"/admin/catalog/product/{beta_product.pk}/change/")
    assert response.status_code in (302, 404)  # admin redirects to the index for a missing object
    assert "Secret beta product" not in client.get("/admin/catalog/product/?q=Secret").content.decode()


def test_api_key_admin_hides_hash_and_revokes(client, staff_merchant, store, other_store):
    key, raw = ApiKey.generate(store, "alpha key")
    beta_key, _ = ApiKey.generate(other_store, "beta key")
    client.force_login(staff_merchant)
    listing = client.get("/admin/stores/apikey/").content.decode()
    assert "alpha key" in listing and "beta key" not in listing
    detail = client.get(f"/admin/stores/apikey/{key.pk}/change/").content.decode()
    assert key.key_hash not in detail and key.key_hash not in listing
    assert 'name="key_hash"' not in detail and 'name="name"' not in detail  # read-only
    assert client.get("/admin/stores/apikey/add/").status_code == 403
    client.post(
        "/admin/stores/apikey/",
        {"action": "revoke_keys", "_selected_action": [key.pk, beta_key.pk]},
    )
    key.refresh_from_db()
    beta_key.refresh_from_db()
    assert key.revoked_at is not None
    assert beta_key.revoked_at is None


def test_analyst_staff_is_read_only(client, staff_analyst, store, shop_data):
    key, _ = ApiKey.generate(store, "alpha key")
    client.force_login(staff_analyst)
    assert client.get("/admin/catalog/product/").status_code == 200
    a1 = shop_data["products"][0]
    html = client.get(f"/admin/catalog/product/{a1.pk}/change/").content.decode()
    assert 'name="title"' not in html  # view-only form
    client.post("/admin/stores/apikey/", {"action": "revoke_keys", "_selected_action": [key.pk]})
    key.refresh_from_db()
    assert key.revoked_at is None
    m = Membership.objects.get(user=staff_analyst)
    assert client.post(f"/admin/stores/membership/{m.pk}/change/", {"role": "merchant"}).status_code == 403
    m.refresh_from_db()
    assert m.role == "analyst"
