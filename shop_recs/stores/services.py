"""Store membership rules: who may act on a store, and the invariant that a store keeps a merchant.

The dashboard (and anything else that manages members) calls these functions; the rules live here,
not in a view. Each function takes the store explicitly and touches only that store's memberships.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import IntegrityError, transaction
from django.utils.translation import gettext_lazy as _

from shop_recs.stores.models import Membership, Role, Store

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

__all__ = [
    "MembershipError",
    "AlreadyMemberError",
    "InvalidRoleError",
    "LastMerchantError",
    "add_member",
    "change_member_role",
    "remove_member",
    "update_store_settings",
]


class MembershipError(Exception):
    """A membership change the rules refuse; ``str(exc)`` is a message for the user."""

    message = _("This membership change is not allowed.")

    def __str__(self) -> str:
        return str(self.message)


class AlreadyMemberError(MembershipError):
    message = _("This user is already a member of the store.")


class InvalidRoleError(MembershipError):
    message = _("Choose a valid role.")


class LastMerchantError(MembershipError):
    message = _("A store needs at least one merchant.")


def _role(role: str) -> Role:
    if role not in Role.values:
        raise InvalidRoleError
    return Role(role)


def _locked_membership(store: Store, membership_id: int) -> Membership:
    """The store's membership, row-locked (raises ``Membership.DoesNotExist`` for another store's)."""
    return Membership.objects.select_for_update().select_related("user").get(pk=membership_id, store=store)


def _is_last_merchant(membership: Membership) -> bool:
    """Would demoting or removing this membership leave its store without a merchant?"""
    if membership.role != Role.MERCHANT:
        return False
    # Lock the store's merchant rows so two concurrent demotions cannot both pass the check.
    others = (
        Membership.objects.select_for_update()
        .filter(store_id=membership.store_id, role=Role.MERCHANT)
        .exclude(pk=membership.pk)
    )
    return not list(others.values_list("pk", flat=True))


def add_member(store: Store, user: AbstractBaseUser, role: str = Role.ANALYST) -> Membership:
    """Give ``user`` a role in ``store``. Raises :class:`AlreadyMemberError` or :class:`InvalidRoleError`."""
    checked = _role(role)
    try:
        with transaction.atomic():
            return Membership.objects.create(user=user, store=store, role=checked)
    except IntegrityError as exc:  # the (user, store) unique constraint
        raise AlreadyMemberError from exc


def change_member_role(store: Store, membership_id: int, role: str) -> Membership:
    """Set a member's role. Raises :class:`LastMerchantError` when that would leave the store without a
    merchant, :class:`InvalidRoleError`, or ``Membership.DoesNotExist`` (not a membership of this store)."""
    checked = _role(role)
    with transaction.atomic():
        membership = _locked_membership(store, membership_id)
        if checked != Role.MERCHANT and _is_last_merchant(membership):
            raise LastMerchantError
        if membership.role != checked:
            membership.role = checked
            membership.save(update_fields=["role"])
    return membership


def remove_member(store: Store, membership_id: int) -> Membership:
    """Remove a member (returns the deleted membership). Raises :class:`LastMerchantError` for the store's
    last merchant, or ``Membership.DoesNotExist`` (not a membership of this store)."""
    with transaction.atomic():
        membership = _locked_membership(store, membership_id)
        if _is_last_merchant(membership):
            raise LastMerchantError
        membership.delete()
    return membership


#: The store fields a merchant edits on the settings page.
STORE_SETTINGS_FIELDS = ("name", "currency", "timezone", "language")


def update_store_settings(store: Store, **values: str) -> dict[str, list[str]]:
    """Save the merchant-editable settings of ``store`` (values already validated by the form) and
    return ``{field: [old, new]}`` for what changed, for the change record."""
    unknown = set(values) - set(STORE_SETTINGS_FIELDS)
    if unknown:
        raise ValueError(f"not store settings: {sorted(unknown)}")
    changed = {name: [getattr(store, name), value] for name, value in values.items() if getattr(store, name) != value}
    if changed:
        for name, (_old, new) in changed.items():
            setattr(store, name, new)
        store.save(update_fields=list(changed))
    return changed
