"""The record of confirmed changes to what shoppers see (rules, experiments, campaigns).

Changes of the live model have their own history (``training.activation``); everything else a
merchant changes for shoppers is written here, with who did it and what changed, and listed on the
Activation history page.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Model

from shop_recs.platform.jobs import json_safe
from shop_recs.serving.models import ShopperFacingChange
from shop_recs.stores.models import Store
from shop_recs.stores.scoping import store_scope


def record_change(
    store: Store,
    user: Any,
    kind: str,
    summary: str,
    *,
    obj: Model | None = None,
    details: dict[str, Any] | None = None,
) -> ShopperFacingChange:
    with store_scope(store):
        return ShopperFacingChange.objects.create(
            store=store,
            user=user if getattr(user, "is_authenticated", False) else None,
            kind=kind,
            object_id=getattr(obj, "pk", None),
            summary=summary[:300],
            details=json_safe(details or {}),
        )


def field_changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    """``{field: [old, new]}`` for the fields whose value differs."""
    return {name: [before.get(name), value] for name, value in after.items() if before.get(name) != value}


def recent_changes(store: Store, limit: int = 200) -> list[ShopperFacingChange]:
    with store_scope(store):
        return list(ShopperFacingChange.objects.select_related("user").order_by("-created_at", "-pk")[:limit])
