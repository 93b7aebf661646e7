"""Settings: API keys (raw key once, hash stored, revoke) and members, with merchant/analyst rights."""

from __future__ import annotations

import re

import pytest

from shop_recs.stores.models import ApiKey, Membership, hash_api_key

pytestmark = pytest.mark.django_db


def test_merchant_creates_key_and_sees_raw_key_once(store, merchant, login):
    client = login(merchant)
    response = client.post("/s/alpha/settings/keys/", {"name": "storefront"})
    assert response.status_code == 200
    assert "no-store" in {d.strip() for d in response["Cache-Control"].split(",")}
    raw = re.search(r'<pre class="secret" id="raw-key">(sr_[^<]+)</pre>', response.content.decode()).group(1)
    key = ApiKey.objects.get(store=store)
    assert key.name == "storefront" and key.created_by == merchant
    assert key.key_hash == hash_api_key(raw) and raw not in key.key_hash
    assert all(raw not in str(getattr(key, f.attname)) for f in ApiKey._meta.concrete_fields)
    listing = client.get("/s/alpha/settings/keys/").content.decode()
    assert raw not in listing
    assert f"sr_{key.prefix}_…" in listing


def test_merchant_revokes_key(store, merchant, login):
    key, _ = ApiKey.generate(store, "old")
    client = login(merchant)
    response = client.post(f"/s/alpha/settings/keys/{key.pk}/revoke/")
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None and not key.is_active
    assert 'data-revoked="1"' in client.get("/s/alpha/settings/keys/").content.decode()


def test_revoke_requires_post(store, merchant, login):
    key, _ = ApiKey.generate(store, "k")
    assert login(merchant).get(f"/s/alpha/settings/keys/{key.pk}/revoke/").status_code == 405
    key.refresh_from_db()
    assert key.is_active


def test_analyst_sees_keys_read_only(store, analyst, login):
    key, _ = ApiKey.generate(store, "frontend")
    client = login(analyst)
    html = client.get("/s/alpha/settings/keys/").content.decode()
    assert "frontend" in html
    assert "Revoke</button>" not in html and "Create key" not in html
    assert client.post("/s/alpha/settings/keys/", {"name": "sneaky"}).status_code == 403
    assert client.post(f"/s/alpha/settings/keys/{key.pk}/revoke/").status_code == 403
    key.refresh_from_db()
    assert key.is_active and ApiKey.objects.filter(store=store).count() == 1


def test_merchant_manages_members(store, merchant, make_user, login):
    colleague = make_user("colleague")
    client = login(merchant)
    response = client.post("/s/alpha/settings/members/", {"username": "colleague", "role": "analyst"})
    assert response.status_code == 302
    m = Membership.objects.get(user=colleague, store=store)
    assert m.role == "analyst"
    client.post(f"/s/alpha/settings/members/{m.pk}/role/", {"role": "merchant"})
    m.refresh_from_db()
    assert m.role == "merchant"
    client.post(f"/s/alpha/settings/members/{m.pk}/remove/")
    assert not Membership.objects.filter(pk=m.pk).exists()


def test_add_member_errors(store, merchant, analyst, login):
    client = login(merchant)
    html = client.post("/s/alpha/settings/members/", {"username": "nobody", "role": "analyst"}).content.decode()
    assert "No user with this username exists." in html
    html = client.post("/s/alpha/settings/members/", {"username": "analyst", "role": "analyst"}).content.decode()
    assert "already a member" in html


def test_last_merchant_cannot_be_demoted_or_removed(store, merchant, analyst, login):
    client = login(merchant)
    mine = Membership.objects.get(user=merchant, store=store)
    client.post(f"/s/alpha/settings/members/{mine.pk}/role/", {"role": "analyst"})
    mine.refresh_from_db()
    assert mine.role == "merchant"
    response = client.post(f"/s/alpha/settings/members/{mine.pk}/remove/", follow=True)
    assert Membership.objects.filter(pk=mine.pk).exists()
    assert "A store needs at least one merchant." in response.content.decode()


def test_analyst_cannot_change_members(store, merchant, analyst, make_user, login):
    make_user("colleague")
    client = login(analyst)
    assert "colleague" not in client.get("/s/alpha/settings/members/").content.decode()
    assert "merchant" in client.get("/s/alpha/settings/members/").content.decode()
    target = Membership.objects.get(user=merchant, store=store)
    assert client.post("/s/alpha/settings/members/", {"username": "colleague", "role": "merchant"}).status_code == 403
    assert client.post(f"/s/alpha/settings/members/{target.pk}/role/", {"role": "analyst"}).status_code == 403
    assert client.post(f"/s/alpha/settings/members/{target.pk}/remove/").status_code == 403
    target.refresh_from_db()
    assert target.role == "merchant"
    assert not Membership.objects.filter(user__username="colleague").exists()


def test_member_of_another_store_is_404(store, other_store, merchant, make_user, login):
    stranger = Membership.objects.create(user=make_user("stranger"), store=other_store, role="merchant")
    client = login(merchant)
    assert client.post(f"/s/alpha/settings/members/{stranger.pk}/role/", {"role": "analyst"}).status_code == 404
    assert client.post(f"/s/alpha/settings/members/{stranger.pk}/remove/").status_code == 404
    stranger.refresh_from_db()
    assert stranger.role == "merchant"


def test_invalid_role_is_refused_with_a_message(store, merchant, analyst, login):
    target = Membership.objects.get(user=analyst, store=store)
    response = login(merchant).post(f"/s/alpha/settings/members/{target.pk}/role/", {"role": "owner"}, follow=True)
    assert "Choose a valid role." in response.content.decode()
    target.refresh_from_db()
    assert target.role == "analyst"
