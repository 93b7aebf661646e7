"""Factories for training tests: a tiny store with a known interaction structure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shop_recs.activity.models import Event
from shop_recs.stores.scoping import unscoped
from tests.s3 import moto_s3, s3_bucket  # noqa: F401 - the local S3 server's fixtures

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _model_dir(settings, tmp_path):
    """Model artifacts in the test's own directory (tests/conftest.py empties the in-process caches)."""
    settings.MODEL_DIR = tmp_path / "models"


@pytest.fixture
def add_events(db):
    def _add(store, rows):
        """rows: (customer, product, event_type, timestamp[, value])"""
        objs = [
            Event(
                store=store,
                customer=r[0],
                product=r[1],
                event_type=r[2],
                timestamp=r[3],
                value=r[4] if len(r) > 4 else None,
            )
            for r in rows
        ]
        with unscoped():
            Event.objects.bulk_create(objs)

    return _add


@pytest.fixture
def shop_data(store, make_product, make_customer, add_events):
    """12 customers x 6 products in two taste groups (mugs, shirts); each customer touches all three
    products of their group in a rotated order, so a leave-last-out holdout has answers."""
    products = [
        make_product(store, f"P{i}", title=f"{'mug' if i < 3 else 'shirt'} {i}", brand="acme" if i < 3 else "wear")
        for i in range(6)
    ]
    customers = [make_customer(store, f"C{i}") for i in range(12)]
    rows = []
    for c_idx, cust in enumerate(customers):
        group = products[:3] if c_idx % 2 == 0 else products[3:]
        r = (c_idx // 2) % 3
        group = group[r:] + group[:r]
        for step, prod in enumerate(group):
            kind = "purchase" if step == c_idx % 3 else "view"
            rows.append((cust, prod, kind, T0 + timedelta(hours=c_idx, minutes=step * 10)))
    add_events(store, rows)
    return {"products": products, "customers": customers}
