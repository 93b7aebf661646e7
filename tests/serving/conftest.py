"""A tiny store with a trained model: mugs and shirts taste groups, plus a brand-new product."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shop_recs.activity.models import Event
from shop_recs.stores.scoping import unscoped

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fresh_serving(settings, tmp_path):
    """Model artifacts go to the test's own directory (tests/conftest.py empties the in-process caches)."""
    settings.MODEL_DIR = tmp_path / "models"


@pytest.fixture
def add_events(db):
    def _add(store, rows):
        objs = [
            Event(
                store=store,
                customer=r[0],
                product=r[1],
                event_type=r[2],
                timestamp=r[3],
                order_id=r[4] if len(r) > 4 else "",
            )
            for r in rows
        ]
        with unscoped():
            Event.objects.bulk_create(objs)

    return _add


@pytest.fixture
def shop(store, make_product, make_customer, add_events):
    """12 customers x 8 products: mugs M0-M3 and shirts S0-S3; N0 is a new mug nobody touched."""
    from shop_recs.catalog.models import Category

    with unscoped():
        mugs = Category.objects.create(store=store, name="Mugs", path="Kitchen > Mugs")
        shirts = Category.objects.create(store=store, name="Shirts", path="Clothes > Shirts")
    products = {}
    for i in range(4):
        products[f"M{i}"] = make_product(
            store, f"M{i}", title=f"Ceramic coffee mug model {i}", category=mugs, price=10 + i
        )
        products[f"S{i}"] = make_product(store, f"S{i}", title=f"Cotton shirt style {i}", category=shirts, price=20 + i)
    products["N0"] = make_product(store, "N0", title="Ceramic coffee mug new edition", category=mugs, price=15)
    customers = [make_customer(store, f"C{i}", country="DE" if i < 6 else "FR") for i in range(12)]
    rows = []
    for c, cust in enumerate(customers):
        group = ["M0", "M1", "M2", "M3"] if c % 2 == 0 else ["S0", "S1", "S2", "S3"]
        r = c % 4
        group = group[r:] + group[:r]
        for step, sku in enumerate(group[:3]):
            kind = "purchase" if step == 0 else "view"
            rows.append(
                (cust, products[sku], kind, T0 + timedelta(hours=c, minutes=step), f"o{c}" if step == 0 else "")
            )
    add_events(store, rows)
    from shop_recs.training.services import train_store

    train_store(store, algorithms=["item_knn"])
    return {"products": products, "customers": customers, "categories": {"mugs": mugs, "shirts": shirts}}
