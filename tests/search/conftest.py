"""Search test fixtures: a small catalog with two headphone brands and a Bose-loving customer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from shop_recs.activity.models import Event
from shop_recs.stores.scoping import unscoped

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _search_settings(settings, tmp_path):
    """Model artifacts in the test's own directory (tests/conftest.py empties the in-process caches)."""
    settings.MODEL_DIR = tmp_path / "models"
    settings.SEARCH_INDEX_CHECK_SECONDS = 0  # check the catalog fingerprint on every search


@pytest.fixture
def catalog(store, make_product):
    """Sony headphones win on text alone (shorter title), Bose ones are what the Bose fans buy."""
    from shop_recs.catalog.services import ensure_category_path

    with unscoped():
        audio = ensure_category_path(store, "Electronics > Audio")
        home = ensure_category_path(store, "Home > Kitchen")
    specs = [
        ("S-HP", "Sony headphones", "Sony", audio, "99.00"),
        ("S-PH", "Sony phone", "Sony", None, "499.00"),
        ("B-HP", "Bose quietcomfort wireless headphones", "Bose", audio, "299.00"),
        ("B-SP", "Bose speaker", "Bose", audio, "149.00"),
        ("B-EB", "Bose earbuds", "Bose", audio, "199.00"),
        ("MUG", "Coffee mug", "Acme", home, "9.50"),
        ("CAFE", "Café crème cup", "Acme", home, "12.00"),
        ("ZH", "无线耳机 蓝牙", "小米", audio, "59.00"),
    ]
    return {
        sku: make_product(store, sku, title=title, brand=brand, category=cat, price=Decimal(price))
        for sku, title, brand, cat, price in specs
    }


@pytest.fixture
def bose_fan(store, catalog, make_customer):
    """Train item kNN on a store where Bose buyers co-buy Bose items and Sony buyers Sony items."""
    from shop_recs.training.services import train_store

    customers = {f"C{i}": make_customer(store, f"C{i}") for i in range(12)}
    fan = make_customer(store, "fan")
    rows = []
    for i, cust in enumerate(customers.values()):
        group = ["B-SP", "B-HP", "B-EB"] if i % 2 == 0 else ["S-PH", "S-HP"]
        for step, sku in enumerate(group):
            rows.append((cust, catalog[sku], "purchase", T0 + timedelta(hours=i, minutes=step)))
    rows += [(fan, catalog["B-SP"], "purchase", T0), (fan, catalog["B-EB"], "view", T0 + timedelta(minutes=5))]
    with unscoped():
        Event.objects.bulk_create(
            [Event(store=store, customer=c, product=p, event_type=t, timestamp=ts) for c, p, t, ts in rows]
        )
    train_store(store, ["item_knn"])
    return fan
