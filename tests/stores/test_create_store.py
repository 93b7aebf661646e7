from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from shop_recs.stores.models import Membership, Role, Store


@pytest.mark.django_db
def test_create_store_with_a_merchant(make_user, capsys):
    user = make_user("owner")
    call_command("create_store", "uci", "--name", "UCI Gifts", "--currency", "gbp", "--merchant", "owner")
    store = Store.objects.get(slug="uci")
    assert store.name == "UCI Gifts" and store.currency == "GBP"
    assert Membership.objects.get(store=store).user == user
    assert Membership.objects.get(store=store).role == Role.MERCHANT
    assert "Created store 'UCI Gifts' (uci), merchant owner" in capsys.readouterr().out


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Bad Slug"], "'Bad Slug' is not a valid slug (try 'bad-slug')"),
        (["ok", "--currency", "pounds"], "--currency 'pounds' is not a 3-letter ISO code"),
        (["ok", "--merchant", "nobody"], "no user named 'nobody'"),
    ],
)
def test_create_store_rejects_bad_input(args, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call_command("create_store", *args)
    assert not Store.objects.exists()


@pytest.mark.django_db
def test_create_store_refuses_a_duplicate_slug(store):
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_store", store.slug)
