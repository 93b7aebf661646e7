"""The one way a model version goes live: :func:`activate_version` (and :func:`rollback_to`, which uses it).

Every path goes through here: training's gate, a promotion from an experiment, a rollback, the Jobs
page and the admin. Activation checks that the user may change the live model (a merchant of the
store, a superuser, or ``None`` for the system: a scheduled run or the setup command), verifies the
file, then swaps the store's active version in one transaction that locks the store row (two
concurrent activations serialise; the partial unique constraint is the backstop), writes an
:class:`ActivationRecord` (who, how, why, the evidence and the version it replaced) and sends
:data:`version_activated`. Serving listens to that signal to drop its cached active version id;
training never imports serving.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from shop_recs.stores.models import Membership, Role, Store
from shop_recs.stores.scoping import store_scope
from shop_recs.training.artifacts import mark_corrupt, verify_artifact
from shop_recs.training.errors import ActivationNotAllowed, ArtifactCorrupt, VersionNotUsable
from shop_recs.training.models import ActivationRecord, ActivationSource, ModelVersion

logger = logging.getLogger(__name__)

#: Sent (``sender=ModelVersion``, ``store_id``, ``version_id``) after a version became the store's active one.
#: This process's caches of the active version must be dropped; other processes see the change
#: within serving's active-version TTL.
version_activated = Signal()


def may_change_live_model(user: Any, store: Store | int) -> bool:
    """Merchants of the store and superusers may; ``None`` is the system (a scheduled run, the setup
    command); an analyst, a stranger or an anonymous user may not."""
    if user is None:
        return True
    if not getattr(user, "is_authenticated", False):
        return False
    if user.is_superuser:
        return True
    store_id = store if isinstance(store, int) else store.pk
    return Membership.objects.filter(user=user, store_id=store_id, role=Role.MERCHANT).exists()


def activate_version(
    version: ModelVersion,
    user: Any = None,
    reason: str = "",
    *,
    source: str = ActivationSource.MANUAL,
    details: dict[str, Any] | None = None,
) -> ModelVersion:
    """Make ``version`` the store's active model (after verifying its file), atomically.

    ``user`` (``None`` = the system), ``source`` (an :class:`ActivationSource`), ``reason`` and
    ``details`` (the evidence) are recorded. Raises :class:`ActivationNotAllowed`,
    :class:`VersionNotUsable` / :class:`ArtifactCorrupt`.
    """
    store_id = version.store_id
    if not may_change_live_model(user, store_id):
        raise ActivationNotAllowed("Only a merchant of this store can change the live model.")
    if version.corrupt_at is not None:
        raise VersionNotUsable(f"version {version.pk} was found corrupt and cannot be activated")
    try:
        verify_artifact(version)
    except ArtifactCorrupt:
        mark_corrupt(version)
        raise
    by = user if getattr(user, "is_authenticated", False) else None
    reason = reason[:200]
    with store_scope(store_id), transaction.atomic():
        Store.objects.select_for_update().get(pk=store_id)
        previous = ModelVersion.objects.filter(is_active=True).exclude(pk=version.pk).first()
        ModelVersion.objects.filter(is_active=True).exclude(pk=version.pk).update(is_active=False)
        now = timezone.now()
        updated = ModelVersion.objects.filter(pk=version.pk).update(
            is_active=True, activated_at=now, activated_by=by, activation_reason=reason
        )
        if not updated:
            raise VersionNotUsable(f"version {version.pk} does not belong to this store")
        ActivationRecord.objects.create(
            store_id=store_id,
            version=version,
            previous_version=previous,
            source=source,
            user=by,
            reason=reason,
            details=details or {},
            created_at=now,
        )
    version.is_active, version.activated_at, version.activated_by, version.activation_reason = True, now, by, reason
    for receiver, result in version_activated.send_robust(ModelVersion, store_id=store_id, version_id=version.pk):
        if isinstance(result, Exception):
            logger.error("store %s: version_activated receiver %r failed: %s", store_id, receiver, result)
    logger.info(
        "store %s: activated model version %s (%s, %s) by %s: %s",
        store_id,
        version.pk,
        version.algorithm,
        source,
        by or "the system",
        reason or "-",
    )
    return version


def rollback_to(version: ModelVersion, user: Any = None, reason: str = "") -> ModelVersion:
    """Re-activate an earlier version (for example after a bad model went live)."""
    if version.is_active:
        return version
    return activate_version(
        version, user=user, reason=reason or f"rollback to version {version.pk}", source=ActivationSource.ROLLBACK
    )


def activation_history(store: Store, limit: int = 200) -> list[ActivationRecord]:
    """The store's changes of live model, newest first (the Activation history page)."""
    with store_scope(store):
        return list(
            ActivationRecord.objects.select_related("version", "previous_version", "user").order_by(
                "-created_at", "-pk"
            )[:limit]
        )


def previous_version(store: Store) -> ModelVersion | None:
    """The most recently activated usable version other than the active one (the rollback target)."""
    with store_scope(store):
        return (
            ModelVersion.objects.filter(activated_at__isnull=False, is_active=False, corrupt_at__isnull=True)
            .order_by("-activated_at", "-pk")
            .first()
        )
