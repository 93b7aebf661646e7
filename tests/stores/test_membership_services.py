"""Membership rules (shop_recs.stores.services): add, change role, remove, a store keeps a merchant."""

from __future__ import annotations

import pytest

from shop_recs.stores import services
from shop_recs.stores.models import Membership, Role

pytestmark = pytest.mark.django_db


def test_add_member_and_duplicate(store, make_user):
    user = make_user("colleague")
    m = services.add_member(store, user, Role.ANALYST)
    assert (m.store_id, m.user_id, m.role) == (store.pk, user.pk, Role.ANALYST)
    with pytest.raises(services.AlreadyMemberError):
        services.add_member(store, user, Role.MERCHANT)
    assert Membership.objects.filter(user=user, store=store).count() == 1


def test_invalid_role_is_refused(store, merchant, make_user):
    with pytest.raises(services.InvalidRoleError):
        services.add_member(store, make_user("x"), "owner")
    mine = Membership.objects.get(user=merchant, store=store)
    with pytest.raises(services.InvalidRoleError):
        services.change_member_role(store, mine.pk, "")


def test_store_keeps_at_least_one_merchant(store, merchant, make_user):
    mine = Membership.objects.get(user=merchant, store=store)
    with pytest.raises(services.LastMerchantError) as exc:
        services.change_member_role(store, mine.pk, Role.ANALYST)
    assert str(exc.value) == "A store needs at least one merchant."
    with pytest.raises(services.LastMerchantError):
        services.remove_member(store, mine.pk)
    mine.refresh_from_db()
    assert mine.role == Role.MERCHANT

    # With a second merchant, the first may step down or leave.
    other = services.add_member(store, make_user("second"), Role.MERCHANT)
    assert services.change_member_role(store, mine.pk, Role.ANALYST).role == Role.ANALYST
    with pytest.raises(services.LastMerchantError):
        services.remove_member(store, other.pk)
    services.remove_member(store, mine.pk)
    assert not Membership.objects.filter(pk=mine.pk).exists()


def test_another_stores_membership_is_not_found(store, other_store, make_user):
    theirs = services.add_member(other_store, make_user("theirs"), Role.ANALYST)
    with pytest.raises(Membership.DoesNotExist):
        services.change_member_role(store, theirs.pk, Role.MERCHANT)
    with pytest.raises(Membership.DoesNotExist):
        services.remove_member(store, theirs.pk)
    theirs.refresh_from_db()
    assert theirs.role == Role.ANALYST
