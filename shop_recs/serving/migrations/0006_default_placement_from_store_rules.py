"""Every store gets its default placement, and its former store-wide rules become that placement's rules.

Before placements there was one ``StoreRules`` row per store, applied to every placement; it serves
the default placement now (every request naming no placement, or an unknown one), so what shoppers
see does not change.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

DEFAULT_KEY = "default"


def create_default_placements(apps: Any, schema_editor: Any) -> int:
    """Create each store's default placement (if missing) and attach the store's unplaced rules row.

    Returns the number of placements created (the tests call this function directly)."""
    Store = apps.get_model("stores", "Store")
    Placement = apps.get_model("serving", "Placement")
    StoreRules = apps.get_model("serving", "StoreRules")
    created = 0
    # all stores: a migration runs for every store.
    for store_id in Store.objects.order_by("pk").values_list("pk", flat=True):
        # all stores: the store is named explicitly (historical models have plain managers).
        placement = Placement.objects.filter(store_id=store_id, is_default=True).first()
        if placement is None:
            # all stores: the store is named explicitly.
            placement = Placement.objects.create(store_id=store_id, key=DEFAULT_KEY, name="Default", is_default=True)
            created += 1
        # all stores: the store is named explicitly; before placements a store had at most one row.
        StoreRules.objects.filter(store_id=store_id, placement__isnull=True).update(placement=placement)
    return created


def detach_rules(apps: Any, schema_editor: Any) -> None:
    """Backwards: keep only the default placement's rules (the old schema holds one row per store)."""
    StoreRules = apps.get_model("serving", "StoreRules")
    # all stores: a migration runs for every store.
    StoreRules.objects.exclude(placement__is_default=True).delete()
    # all stores: a migration runs for every store.
    StoreRules.objects.update(placement=None)


class Migration(migrations.Migration):
    dependencies = [
        ("serving", "0005_placements"),
        ("stores", "0003_invitations_and_store_language"),
    ]

    operations = [migrations.RunPython(create_default_placements, detach_rules)]
