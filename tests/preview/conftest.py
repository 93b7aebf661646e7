"""A small store trained with two algorithms (one run), for the Recommendations pages."""

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
def login(client):
    def _login(user):
        client.force_login(user)
        return client

    return _login


@pytest.fixture
def catalog(store, make_product, make_customer):
    """Mugs M0-M3 and shirts S0-S3 in two categories, 12 customers in two taste groups (no model yet)."""
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
    customers = [make_customer(store, f"C{i}", country="DE") for i in range(12)]
    events = []
    for c, cust in enumerate(customers):
        group = ["M0", "M1", "M2", "M3"] if c % 2 == 0 else ["S0", "S1", "S2", "S3"]
        r = c % 4
        group = group[r:] + group[:r]
        # Every customer buys their first two products in one order (so FBT has pairs), then views one more.
        for step, sku in enumerate(group[:3]):
            kind = "purchase" if step < 2 else "view"
            events.append(
                Event(
                    store=store,
                    customer=cust,
                    product=products[sku],
                    event_type=kind,
                    timestamp=T0 + timedelta(hours=c, minutes=step),
                    order_id=f"o{c}" if kind == "purchase" else "",
                )
            )
    with unscoped():
        Event.objects.bulk_create(events)
    return {"products": products, "customers": customers, "categories": {"mugs": mugs, "shirts": shirts}}


@pytest.fixture
def shop(store, catalog):
    """``catalog`` plus one training run of two algorithms; one of them is active."""
    from shop_recs.training.services import train_store

    run = train_store(store, algorithms=["item_knn", "popularity"])
    return {**catalog, "run": run}
