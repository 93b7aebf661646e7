"""Fixtures of the erasure tests: a small trained store, and one customer with a row in every table."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from shop_recs.activity.models import Event
from shop_recs.stores.scoping import unscoped

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _own_model_dir(settings, tmp_path):
    """Model artifacts go to the test's own directory."""
    settings.MODEL_DIR = tmp_path / "models"


def add_events(store, rows) -> list[Event]:
    """rows: (customer or None, product or None, type, timestamp[, session_id])."""
    objs = [
        Event(
            store=store,
            customer=r[0],
            product=r[1],
            event_type=r[2],
            timestamp=r[3],
            session_id=r[4] if len(r) > 4 else "",
            value=20.0 if r[2] == "purchase" else None,
            quantity=1 if r[2] == "purchase" else None,
        )
        for r in rows
    ]
    with unscoped():
        return Event.objects.bulk_create(objs)


@pytest.fixture
def shop(store, make_product, make_customer):
    """12 customers x 8 products (mugs M0-M3, shirts S0-S3), trained with item kNN.

    Even customers like mugs, odd ones shirts; each bought one product and viewed two more.
    """
    from shop_recs.catalog.models import Category
    from shop_recs.training.services import train_store

    with unscoped():
        mugs = Category.objects.create(store=store, name="Mugs", path="Kitchen > Mugs")
        shirts = Category.objects.create(store=store, name="Shirts", path="Clothes > Shirts")
    products = {}
    for i in range(4):
        products[f"M{i}"] = make_product(store, f"M{i}", title=f"Ceramic mug {i}", category=mugs, price=10 + i)
        products[f"S{i}"] = make_product(store, f"S{i}", title=f"Cotton shirt {i}", category=shirts, price=20 + i)
    customers = [make_customer(store, f"C{i}", country="DE") for i in range(12)]
    rows = []
    for c, cust in enumerate(customers):
        group = ["M0", "M1", "M2", "M3"] if c % 2 == 0 else ["S0", "S1", "S2", "S3"]
        r = c % 4
        group = group[r:] + group[:r]
        for step, sku in enumerate(group[:3]):
            rows.append(
                (cust, products[sku], "purchase" if step == 0 else "view", T0 + timedelta(hours=c, minutes=step))
            )
    add_events(store, rows)
    train_store(store, algorithms=["item_knn"])
    return {"products": products, "customers": customers}


def fill_every_table(store, customer, product, session_id: str) -> dict:
    """A row about ``customer`` in every table that has a customer column, plus anonymous rows of
    their session. Returns what was created (for assertions)."""
    from analytics.experiments.models import Attribution
    from analytics.models import CustomerProfile
    from shop_recs.ads.models import Campaign, DailyCap, Impression
    from shop_recs.search.models import SearchQuery
    from shop_recs.serving.models import RecommendationList

    events = add_events(
        store,
        [
            (customer, product, "purchase", T0, session_id),
            (customer, product, "view", T0 + timedelta(minutes=1), session_id),
            (None, product, "view", T0 - timedelta(minutes=5), session_id),
        ],
    )
    with unscoped():
        campaign = Campaign.objects.create(
            store=store,
            name="Summer",
            title="Summer sale",
            landing_url="https://shop.example/summer",
            starts_at=T0,
            ends_at=T0 + timedelta(days=30),
            budget=1000,
            impressions_served=2,
        )
        Impression.objects.create(store=store, campaign=campaign, customer=customer, clicked_at=T0)
        DailyCap.objects.create(store=store, campaign=campaign, customer=customer, day=T0.date(), count=2)
        SearchQuery.objects.create(store=store, query="mug", normalized_query="mug", customer=customer)
        SearchQuery.objects.create(store=store, query="cup", normalized_query="cup", session_id=session_id)
        lst = RecommendationList.objects.create(
            store=store, list_id=uuid.uuid4(), endpoint="customer", customer=customer, variant="1:2", product_ids=[1]
        )
        CustomerProfile.objects.create(store=store, customer=customer, segment_ids=[1], events=2)
        for e in events:
            Attribution.objects.create(
                store=store,
                event_id=e.pk,
                event_type=e.event_type,
                list_id=lst.list_id,
                list_created_at=T0,
                timestamp=e.timestamp,
                customer_id=e.customer_id,
                product_id=product.pk,
                revenue=20.0,
                via="list",
            )
    return {"events": events, "campaign": campaign}
