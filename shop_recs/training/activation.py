"""The one way a model version goes live: :func:`activate_version` (and :func:`rollback_to`, which uses it).

Activation verifies the file, then swaps the store's active version in one transaction that locks the
store row (two concurrent activations serialise; the partial unique constraint is the backstop),
records who and why on the version, and sends :data:`version_activated`. Serving listens to that
signal to drop its cached active version id; training never imports serving.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from shop_recs.stores.models import Store
from shop_recs.stores.scoping import store_scope
from shop_recs.training.artifacts import mark_corrupt, verify_artifact
from shop_recs.training.errors import ArtifactCorrupt, VersionNotUsable
from shop_recs.training.models import ModelVersion

logger = logging.getLogger(__name__)

#: Sent (``sender=ModelVersion``, ``store_id``, ``version_id``) after a version became the store's active one.
#: This process's caches of the active version must be dropped; other processes see the change
#: within serving's active-version TTL.
version_activated = Signal()


def activate_version(version: ModelVersion, user: Any = None, reason: str = "") -> ModelVersion:
    """Make ``version`` the store's active model (after verifying its file), atomically.

    ``user`` (if authenticated) and ``reason`` are recorded on the version. Raises
    :class:`VersionNotUsable` / :class:`ArtifactCorrupt`.
    """
    store_id = version.store_id
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
        ModelVersion.objects.filter(is_active=True).exclude(pk=version.pk).update(is_active=False)
        now = timezone.now()
        updated = ModelVersion.objects.filter(pk=version.pk).update(
            is_active=True, activated_at=now, activated_by=by, activation_reason=reason
        )
        if not updated:
            raise VersionNotUsable(f"version {version.pk} does not belong to this store")
    version.is_active, version.activated_at, version.activated_by, version.activation_reason = True, now, by, reason
    for receiver, result in version_activated.send_robust(ModelVersion, store_id=store_id, version_id=version.pk):
        if isinstance(result, Exception):
            logger.error("store %s: version_activated receiver %r failed: %s", store_id, receiver, result)
    logger.info(
        "store %s: activated model version %s (%s) by %s: %s",
        store_id,
        version.pk,
        version.algorithm,
        by or "the system",
        reason or "-",
    )
    return version


def rollback_to(version: ModelVersion, user: Any = None, reason: str = "") -> ModelVersion:
    """Re-activate an earlier version (for example after a bad model went live)."""
    if version.is_active:
        return version
    return activate_version(version, user=user, reason=reason or f"rollback to version {version.pk}")


def previous_version(store: Store) -> ModelVersion | None:
    """The most recently activated usable version other than the active one (the rollback target)."""
    with store_scope(store):
        return (
            ModelVersion.objects.filter(activated_at__isnull=False, is_active=False, corrupt_at__isnull=True)
            .order_by("-activated_at", "-pk")
            .first()
        )
