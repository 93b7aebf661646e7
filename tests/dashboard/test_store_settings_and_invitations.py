"""Settings → Store (name, currency, time zone, language) and inviting members by e-mail address."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from shop_recs.serving.models import ChangeKind, ShopperFacingChange
from shop_recs.stores import invitations
from shop_recs.stores.models import Invitation, Membership, Role
from shop_recs.stores.scoping import unscoped

pytestmark = pytest.mark.django_db

SETTINGS_URL = "/s/alpha/settings/store/"


def _valid(**overrides) -> dict[str, str]:
    data = {"name": "Alpha Outlet", "currency": "EUR", "timezone": "Europe/Berlin", "language": "zh-hans"}
    data.update(overrides)
    return data


def test_merchant_edits_store_settings_and_the_change_is_recorded(store, merchant, login):
    client = login(merchant)
    page = client.get(SETTINGS_URL).content.decode()
    assert 'name="timezone"' in page and "Asia/Shanghai" in page
    response = client.post(SETTINGS_URL, _valid())
    assert response.status_code == 302
    store.refresh_from_db()
    assert (store.name, store.currency, store.timezone, store.language) == (
        "Alpha Outlet",
        "EUR",
        "Europe/Berlin",
        "zh-hans",
    )
    with unscoped():
        change = ShopperFacingChange.objects.get(store=store, kind=ChangeKind.STORE)
    assert change.user == merchant
    assert change.details["currency"] == ["USD", "EUR"] and change.details["name"] == ["Alpha Shop", "Alpha Outlet"]
    # Saving the same values again records nothing.
    client.post(SETTINGS_URL, _valid())
    with unscoped():
        assert ShopperFacingChange.objects.filter(store=store, kind=ChangeKind.STORE).count() == 1


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("currency", "XXQ", "Select a valid choice"),
        ("timezone", "Mars/Olympus", "Select a valid choice"),
        ("language", "fr", "Select a valid choice"),
        ("name", "   ", "This field is required"),
        ("name", "Bad\x01name", "control characters"),
    ],
)
def test_bad_store_settings_are_refused_field_by_field(store, merchant, login, field, value, message):
    response = login(merchant).post(SETTINGS_URL, _valid(**{field: value}))
    assert response.status_code == 200
    assert message in response.content.decode()
    store.refresh_from_db()
    assert (store.name, store.currency, store.timezone) == ("Alpha Shop", "USD", "UTC")


def test_analyst_reads_settings_but_cannot_change_them(store, analyst, login):
    client = login(analyst)
    page = client.get(SETTINGS_URL).content.decode()
    assert "Only merchants can change the store settings." in page and "<select" not in page
    assert client.post(SETTINGS_URL, _valid()).status_code == 403
    store.refresh_from_db()
    assert store.name == "Alpha Shop"


def test_store_language_is_the_default_for_members_who_chose_none(store, merchant, login):
    store.language = "zh-hans"
    store.save()
    client = login(merchant)
    assert "设置" in client.get(SETTINGS_URL).content.decode()
    # The member's own choice (the language switch's cookie) wins over the store's.
    client.cookies["django_language"] = "en"
    assert "Store settings" in client.get(SETTINGS_URL).content.decode()


def _invite(client, email: str, role: str = "analyst") -> str:
    response = client.post("/s/alpha/settings/members/invite/", {"email": email, "role": role})
    assert response.status_code == 200, response.content[:500]
    assert "no-store" in response["Cache-Control"]
    return re.search(
        r'<pre class="secret" id="invite-link">http://testserver(/invite/[^<]+/)</pre>', response.content.decode()
    ).group(1)


def test_invited_person_creates_an_account_and_joins_with_the_invited_role(store, merchant, login):
    link = _invite(login(merchant), "new.person@example.com", "merchant")
    invitation = Invitation.objects.get(store=store)
    assert invitation.token_hash not in link and link.split("/")[2] not in invitation.token_hash
    visitor = Client()
    page = visitor.get(link).content.decode()
    assert "Join Alpha Shop" in page and "new.person@example.com" in page
    response = visitor.post(
        link, {"username": "newbie", "password1": "a-long-pass-phrase", "password2": "a-long-pass-phrase"}
    )
    assert response.status_code == 302 and response["Location"] == "/s/alpha/"
    user = get_user_model().objects.get(username="newbie")
    assert user.email == "new.person@example.com"
    assert Membership.objects.get(store=store, user=user).role == Role.MERCHANT
    assert visitor.get("/s/alpha/").status_code == 200  # signed in
    # The link works once.
    assert Client().get(link).status_code == 410


def test_signed_in_user_joins_with_one_click(store, other_store, merchant, make_user, login):
    link = _invite(login(merchant), "existing@example.com")
    someone = make_user("someone", other_store, Role.MERCHANT)
    client = login(someone)
    assert client.post(link).status_code == 302
    assert Membership.objects.get(store=store, user=someone).role == Role.ANALYST
    # Their role in their own store is untouched.
    assert Membership.objects.get(store=other_store, user=someone).role == Role.MERCHANT


def test_signup_errors_are_specific(store, merchant, login):
    link = _invite(login(merchant), "x@example.com")
    page = Client().post(link, {"username": "merchant", "password1": "abc", "password2": "abd"}).content.decode()
    assert "This username is taken" in page and "The two passwords differ." in page
    assert not get_user_model().objects.filter(email="x@example.com").exists()


def test_withdrawn_expired_and_forged_links_are_refused(store, merchant, login):
    client = login(merchant)
    first = _invite(client, "a@example.com")
    # Re-inviting the same address replaces the pending invitation: the first link stops working.
    second = _invite(client, "A@example.com")
    assert "withdrawn" in Client().get(first).content.decode()
    pending = Invitation.objects.pending().get(store=store)
    assert client.post(f"/s/alpha/settings/invitations/{pending.pk}/revoke/").status_code == 302
    assert Client().get(second).status_code == 410
    third = _invite(client, "b@example.com")
    Invitation.objects.filter(email="b@example.com").update(expires_at=timezone.now() - timedelta(seconds=1))
    assert "expired" in Client().get(third).content.decode()
    assert "not valid" in Client().get("/invite/inv_forged/").content.decode()
    assert Client().get("/invite/not-a-token/").status_code == 410
    assert Membership.objects.filter(store=store).count() == 1


def test_inviting_a_member_or_a_bad_address_is_refused(store, merchant, analyst, login):
    analyst.email = "analyst@example.com"
    analyst.save()
    client = login(merchant)
    response = client.post("/s/alpha/settings/members/invite/", {"email": "ANALYST@example.com", "role": "analyst"})
    assert response.status_code == 302
    assert "already a member" in client.get("/s/alpha/settings/members/").content.decode()
    client.post("/s/alpha/settings/members/invite/", {"email": "not-an-address", "role": "analyst"})
    assert "valid email address" in client.get("/s/alpha/settings/members/").content.decode()
    client.post("/s/alpha/settings/members/invite/", {"email": "ok@example.com", "role": "owner"})
    assert Invitation.objects.count() == 0


def test_analyst_cannot_invite_or_withdraw(store, merchant, analyst, login):
    created = invitations.invite(store, "p@example.com", Role.ANALYST, merchant)
    client = login(analyst)
    assert (
        client.post("/s/alpha/settings/members/invite/", {"email": "q@example.com", "role": "merchant"}).status_code
        == 403
    )
    assert client.post(f"/s/alpha/settings/invitations/{created.invitation.pk}/revoke/").status_code == 403
    assert Invitation.objects.pending().count() == 1
    page = client.get("/s/alpha/settings/members/").content.decode()
    assert "p@example.com" in page and 'id="invite-form"' not in page


def test_another_stores_invitation_cannot_be_withdrawn(store, other_store, merchant, make_user, login):
    theirs = invitations.invite(other_store, "p@example.com", Role.ANALYST, None)
    assert login(merchant).post(f"/s/alpha/settings/invitations/{theirs.invitation.pk}/revoke/").status_code == 404
    assert Invitation.objects.get(pk=theirs.invitation.pk).is_pending
