from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shop_recs.activity.models import Event
from shop_recs.stores.scoping import unscoped

AS_OF = datetime(2025, 3, 31, 12, 0, tzinfo=UTC)


@pytest.fixture
def add_event():
    def _add(store, customer, etype, product=None, *, days_ago=0.0, value=None, qty=None, order="", at=None):
        ts = at or (AS_OF - timedelta(days=days_ago))
        with unscoped():
            return Event.objects.create(
                store=store,
                customer=customer,
                event_type=etype,
                product=product,
                value=value,
                quantity=qty,
                order_id=order,
                timestamp=ts,
            )

    return _add


@pytest.fixture
def shop(store, make_product, make_customer, add_event):
    """A small store with hand-checkable purchases: 6 customers, 2 categories."""
    from shop_recs.catalog.models import Category

    with unscoped():
        elec = Category.objects.create(store=store, name="Electronics", path="Electronics")
        home = Category.objects.create(store=store, name="Home", path="Home")
    p1 = make_product(store, "E1", category=elec, price=100, brand="Acme")
    p2 = make_product(store, "E2", category=elec, price=300, brand="Acme")
    p3 = make_product(store, "H1", category=home, price=20, brand="Casa")
    custs = [make_customer(store, f"c{i}") for i in range(1, 7)]
    c1, c2, c3, c4, c5, c6 = custs
    # c1: two orders 10 and 40 days ago, premium electronics
    add_event(store, c1, "purchase", p2, days_ago=40, value=600, qty=1, order="o1")
    add_event(store, c1, "purchase", p1, days_ago=10, value=100, qty=2, order="o2")
    add_event(store, c1, "view", p3, days_ago=10)
    # c2: one order 100 days ago, two lines (same order)
    add_event(store, c2, "purchase", p3, days_ago=100, value=10, qty=1, order="o3")
    add_event(store, c2, "purchase", p3, days_ago=100, value=10, qty=3, order="o3")
    # c3: three orders without order ids, every 5 days
    for d in (5, 10, 15):
        add_event(store, c3, "purchase", p3, days_ago=d, value=20)
    # c4: views only
    add_event(store, c4, "view", p1, days_ago=1)
    add_event(store, c4, "view", p1, days_ago=1, at=AS_OF - timedelta(days=1, minutes=10))
    # c5: big spender, lapsed
    add_event(store, c5, "purchase", p2, days_ago=200, value=900, qty=1, order="o9")
    # c6: nothing at all
    return {"store": store, "customers": custs, "products": (p1, p2, p3)}
