"""What serving does when training reports, and when activity forgets or merges customers: receivers
of training's and ``activity.erasure``'s signals (connected in ``apps.py``).

Training and activity send the signals and never import serving; serving listens.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

from shop_recs.serving import fbt, runtime
from shop_recs.serving.models import RecommendationList, default_placement
from shop_recs.stores.models import Store
from shop_recs.stores.scoping import store_scope
from shop_recs.training import precompute
from shop_recs.training.models import ModelVersion

logger = logging.getLogger(__name__)


def create_default_placement(sender: Any, instance: Store, created: bool, raw: bool = False, **kwargs: Any) -> None:
    """``post_save`` of ``Store``: every new store gets its default placement (it serves every request
    that names no placement, or one the store does not have)."""
    if created and not raw:
        default_placement(instance.pk)


def forget_active_version(sender: Any, store_id: int, **kwargs: Any) -> None:
    """``training.activation.version_activated``: this process serves the new version from its next request."""
    runtime.forget_active_version(store_id)


def rebuild_frequently_bought_together(sender: Any, store: Store, **kwargs: Any) -> None:
    """``training.services.model_trained``: serving never computes FBT on a request; rebuild it with every model."""
    fbt.build_fbt(store)


# --- activity.erasure: forget, merge, delete events ------------------------------------------------


def erase_customer_rows(
    sender: Any, store: Store, customer: Any, report: Any, dry_run: bool = False, **kwargs: Any
) -> None:
    """``activity.erasure.customer_erasing``: the customer's served lists (their experiment
    assignments are the ``variant`` of these rows) go, and on commit the model versions' precomputed
    candidates for them are cleared and this process drops the store's serving state.

    The cached latest activity is dropped by ``activity.changes`` (the erasure announces the customer).
    """
    lists = RecommendationList.objects.filter(customer_id=customer.pk)
    if dry_run:
        report.add(RecommendationList, lists.count())
        return
    report.add(RecommendationList, lists.delete()[0])
    store_id, customer_pk = store.pk, customer.pk
    transaction.on_commit(lambda: drop_precomputed_candidates(store_id, {customer_pk}))


def drop_precomputed_candidates(store_id: int, customer_ids: set[int]) -> int:
    """Clear these customers' rows in the sidecar of every usable version of the store (a rollback
    may bring an older one back), then drop this process's serving state so it reloads them.
    Returns the rows cleared. Other processes cannot reach the rows any more: customer ids are
    never reused, so no request maps to them."""
    cleared = 0
    with store_scope(store_id):
        versions = list(ModelVersion.objects.filter(corrupt_at__isnull=True))
    for version in versions:
        try:
            cleared += precompute.drop_user_candidates(version, customer_ids)
        except (OSError, ValueError, KeyError) as exc:
            # The erasure itself is committed; a broken sidecar is refused by serving anyway.
            logger.warning("could not clear erased customers from the sidecar of version %s: %s", version.pk, exc)
    runtime.invalidate(store_id)
    return cleared


def merge_customer_rows(sender: Any, store: Store, target: Any, source: Any, report: Any, **kwargs: Any) -> None:
    """``activity.erasure.customers_merging``: the duplicate's served lists now belong to the target
    (anonymous sessions' lists carry no session, so there is nothing else to move)."""
    moved = 0
    if source is not None:
        moved = RecommendationList.objects.filter(customer_id=source.pk).update(customer_id=target.pk)
    report.add(RecommendationList, moved)
