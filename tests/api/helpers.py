"""Small helpers shared by the API tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shop_recs.stores.scoping import unscoped

TS = "2025-03-01T12:00:00Z"


def event(**kwargs) -> dict:
    row = {"customer": "c1", "type": "view", "sku": "SKU-1", "timestamp": TS}
    row.update(kwargs)
    return {k: v for k, v in row.items() if v is not ...}


def future_ts(days: int = 2) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def count(model, **filters) -> int:
    with unscoped():
        return model.objects.filter(**filters).count()


def error_details(response) -> set[tuple[int, str]]:
    return {(d["index"], d["field"]) for d in response.json()["error"]["details"]}
