"""Dashboard fixtures: an event factory and a small, hand-built dataset with known answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shop_recs.activity.models import Event

LATEST = datetime(2024, 3, 10, 15, 30, tzinfo=UTC)


@pytest.fixture
def make_event(db):
    def _make(store, event_type: str, *, customer=None, session_id: str = "", product=None, at=LATEST, **kwargs):
        # The unscoped base manager: fixtures build several stores' rows outside any scope.
        return Event.all_stores.create(
            store=store,
            event_type=event_type,
            customer=customer,
            session_id=session_id,
            product=product,
            timestamp=at,
            **kwargs,
        )

    return _make


@pytest.fixture
def shop_data(store, other_store, make_product, make_customer, make_event):
    """Known dataset for ``store`` (alpha), plus noise in ``other_store`` that must never leak in.

    Last 30 days: revenue 10*2 + 5.5*1 + 10*1 = 35.5 in orders o1, o2; viewers c1 c2 c3 s1 (4),
    carters c1 c2 s1 (3), buyers c1 c2 (2); A1 is the most viewed (3) and top by revenue (30.0).
    One purchase 100 days earlier (c3, 100.0, order o0) only counts for "all".
    """
    a1 = make_product(store, "A1", title="Blue mug", brand="Acme")
    a2 = make_product(store, "A2", title="Red kettle", brand="Acme")
    a3 = make_product(store, "A3", title="Green teapot", brand="Teaco")
    c1 = make_customer(store, "c1", country="DE", age_band="25-34")
    c2 = make_customer(store, "c2", country="FR", age_band="35-44")
    c3 = make_customer(store, "c3", country="DE", age_band="35-44")
    day = timedelta(days=1)
    e = make_event
    e(store, "view", customer=c1, product=a1, at=LATEST - 3 * day)
    e(store, "view", customer=c1, product=a2, at=LATEST - 3 * day)
    e(store, "add_to_cart", customer=c1, product=a1, value=2, at=LATEST - 2 * day)
    e(store, "purchase", customer=c1, product=a1, value=10.0, quantity=2, order_id="o1", at=LATEST - 2 * day)
    e(store, "purchase", customer=c1, product=a2, value=5.5, quantity=1, order_id="o1", at=LATEST - 2 * day)
    e(store, "view", customer=c2, product=a1, at=LATEST - day)
    e(store, "add_to_cart", customer=c2, product=a1, value=1, at=LATEST - day)
    e(store, "purchase", customer=c2, product=a1, value=10.0, quantity=1, order_id="o2", at=LATEST)
    e(store, "view", customer=c3, product=a2, at=LATEST)
    e(store, "view", customer=c3, product=a3, at=LATEST)
    e(store, "view", session_id="s1", product=a1, at=LATEST)
    e(store, "add_to_cart", session_id="s1", product=a2, value=1, at=LATEST)
    e(store, "purchase", customer=c3, product=a3, value=100.0, quantity=1, order_id="o0", at=LATEST - 100 * day)

    # Another store with bigger numbers and a *later* latest event: must not move alpha's window.
    b1 = make_product(other_store, "B1", title="Secret beta product")
    bc = make_customer(other_store, "beta-cust", country="US")
    for i in range(5):
        e(
            other_store,
            "purchase",
            customer=bc,
            product=b1,
            value=999.0,
            quantity=3,
            order_id=f"b{i}",
            at=LATEST + 40 * day,
        )
    return {"products": (a1, a2, a3), "customers": (c1, c2, c3), "beta_product": b1, "beta_customer": bc}


@pytest.fixture
def login(client):
    def _login(user):
        client.force_login(user)
        return client

    return _login
