"""Inviting people to a store by e-mail address, and accepting an invitation.

The rules live here, not in the views: an invitation names a valid role, one address has at most one
pending invitation per store, a link works once and only until it expires, and accepting it goes through
``services.add_member`` (so the membership rules are the same as for any other way of joining).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from shop_recs.stores import services as membership_services
from shop_recs.stores.models import INVITATION_VALID_DAYS, Invitation, Membership, Role, Store

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

__all__ = [
    "InvitationError",
    "CreatedInvitation",
    "invite",
    "revoke_invitation",
    "invitation_for_token",
    "accept_invitation",
]

#: Raw invitation tokens start with this, so one pasted in a support chat is recognisable.
TOKEN_PREFIX = "inv_"  # noqa: S105 - a recognisable prefix, not a secret


class InvitationError(Exception):
    """An invitation the rules refuse; ``str(exc)`` is a message for the user."""

    def __init__(self, message) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return str(self.message)


@dataclass(frozen=True)
class CreatedInvitation:
    invitation: Invitation
    token: str  # shown once; only its hash is stored


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invite(store: Store, email: str, role: str, invited_by: AbstractBaseUser | None) -> CreatedInvitation:
    """Invite ``email`` to ``store`` with ``role``. A pending invitation of the same address is replaced
    (its link stops working), so re-inviting is how a merchant gets a fresh link."""
    if role not in Role.values:
        raise InvitationError(_("Choose a valid role."))
    address = email.strip()
    if Membership.objects.filter(store=store, user__email__iexact=address).exists():
        raise InvitationError(_("%(email)s is already a member of this store.") % {"email": address})
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = timezone.now()
    with transaction.atomic():
        Invitation.objects.pending().filter(store=store, email__iexact=address).update(revoked_at=now)
        invitation = Invitation.objects.create(
            store=store,
            email=address,
            role=role,
            token_hash=_hash(token),
            invited_by=invited_by if getattr(invited_by, "is_authenticated", False) else None,
            created_at=now,
            expires_at=now + timedelta(days=INVITATION_VALID_DAYS),
        )
    return CreatedInvitation(invitation, token)


def revoke_invitation(store: Store, invitation_id: int) -> Invitation:
    """Revoke a pending invitation of ``store`` (``Invitation.DoesNotExist`` for another store's)."""
    invitation = Invitation.objects.get(pk=invitation_id, store=store)
    if invitation.is_pending:
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])
    return invitation


def invitation_for_token(token: str) -> Invitation:
    """The pending invitation a link's token opens, or :class:`InvitationError` saying why not."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 100:
        raise InvitationError(_("This invitation link is not valid."))
    invitation = Invitation.objects.select_related("store").filter(token_hash=_hash(token)).first()
    if invitation is None:
        raise InvitationError(_("This invitation link is not valid."))
    if invitation.accepted_at is not None:
        raise InvitationError(_("This invitation has already been used."))
    if invitation.revoked_at is not None:
        raise InvitationError(_("This invitation has been withdrawn. Ask the store's merchant for a new one."))
    if invitation.expires_at <= timezone.now():
        raise InvitationError(_("This invitation has expired. Ask the store's merchant for a new one."))
    return invitation


def accept_invitation(token: str, user: AbstractBaseUser) -> Membership:
    """Make ``user`` a member of the invitation's store with its role; the link cannot be used again.

    The row is locked, so two tabs accepting the same link cannot both succeed. A user who is already
    a member keeps their membership (the invitation is then used up without changing their role: a
    link must not be a way to demote or promote someone)."""
    with transaction.atomic():
        invitation = invitation_for_token(token)
        invitation = Invitation.objects.select_for_update().select_related("store").get(pk=invitation.pk)
        if invitation.accepted_at is not None:
            raise InvitationError(_("This invitation has already been used."))
        existing = Membership.objects.filter(store=invitation.store, user=user).first()
        membership = existing or membership_services.add_member(invitation.store, user, invitation.role)
        invitation.accepted_at = timezone.now()
        invitation.accepted_by = user
        invitation.save(update_fields=["accepted_at", "accepted_by"])
    return membership
