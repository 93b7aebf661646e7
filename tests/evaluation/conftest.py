"""Fixtures of the evaluation tests: tiny stores whose structure (and, for tuning, the right answer) is known."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from shop_recs.activity.models import Event
from shop_recs.stores.scoping import unscoped

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _dirs(settings, tmp_path):
    settings.MODEL_DIR = tmp_path / "models"
    settings.TUNING_DIR = tmp_path / "tuning"


@pytest.fixture
def login(client):
    def _login(user):
        client.force_login(user)
        return client

    return _login


def _bulk(rows):
    with unscoped():
        Event.objects.bulk_create(rows)


@pytest.fixture
def make_taste_store(make_product, make_customer):
    """Two taste groups (5 mugs, 5 shirts); 24 customers each touch 3-7 products of their group, one a
    day, so leave-last-out and temporal splits both have answers and some customers are "warm"."""

    def _make(store):
        rng = np.random.default_rng(0)
        products = [make_product(store, f"P{i}", title=f"{'mug' if i < 5 else 'shirt'} {i}") for i in range(10)]
        customers = [make_customer(store, f"C{i}") for i in range(24)]
        rows = []
        for c, cust in enumerate(customers):
            group = products[:5] if c % 2 == 0 else products[5:]
            n = 3 + c % 5
            picks = [group[j % 5] for j in rng.permutation(7)[:n]]
            seen = set()
            for step, prod in enumerate(picks):
                etype = "purchase" if prod.pk in seen or step % 2 else "view"
                seen.add(prod.pk)
                rows.append(
                    Event(
                        store=store, customer=cust, product=prod, event_type=etype, timestamp=T0 + timedelta(days=step)
                    )
                )
        _bulk(rows)
        return {"products": products, "customers": customers}

    return _make


@pytest.fixture
def taste_store(store, make_taste_store):
    return make_taste_store(store)


@pytest.fixture
def popularity_puzzle(store, make_product, make_customer):
    """A store where ``popularity(count="weight")`` is known to beat ``count="users"``.

    Train (day 0): T1-T3 view Z, V1-V4 view X, P1-P2 purchase B. Test (day 3): T1-T3 purchase B.
    By distinct customers X (4) outranks B (2), by weight B (2 x 5) outranks X (4): with a one-day
    temporal holdout NDCG@10 is 1.0 for "weight" and 1/log2(3) for "users" (and the defaults).
    """
    z, x, b = (make_product(store, sku) for sku in ("Z", "X", "B"))
    ts = [make_customer(store, f"T{i}") for i in range(3)]
    vs = [make_customer(store, f"V{i}") for i in range(4)]
    ps = [make_customer(store, f"Q{i}") for i in range(2)]
    rows = [Event(store=store, customer=c, product=z, event_type="view", timestamp=T0) for c in ts]
    rows += [Event(store=store, customer=c, product=x, event_type="view", timestamp=T0) for c in vs]
    rows += [Event(store=store, customer=c, product=b, event_type="purchase", timestamp=T0) for c in ps]
    rows += [
        Event(store=store, customer=c, product=b, event_type="purchase", timestamp=T0 + timedelta(days=3)) for c in ts
    ]
    _bulk(rows)
    return {"Z": z, "X": x, "B": b}
