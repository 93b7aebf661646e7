from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from analytics.models import CustomerProfile, Segment
from analytics.segments import build_auto_segments, name_cluster
from shop_recs.activity.models import Customer, Event
from shop_recs.catalog.models import Category, Product
from shop_recs.stores.scoping import store_scope, unscoped


def _populate(store, n=120, seed=1):
    """Synthetic profiles with three clear groups, written directly."""
    rng = np.random.default_rng(seed)
    with unscoped():
        custs = Customer.objects.bulk_create([Customer(store=store, external_id=f"{store.slug}-{i}") for i in range(n)])
        rows = []
        for i, c in enumerate(custs):
            g = i % 3
            freq = [8, 1, 0][g] + (int(rng.integers(0, 2)) if g < 2 else 0)
            rows.append(
                CustomerProfile(
                    store=store,
                    customer=c,
                    frequency=freq,
                    monetary=[900, 40, 0][g] * (1 + rng.random() * 0.1),
                    recency_days=[5, 200, None][g] if g != 2 else None,
                    churn_risk=[0.1, 0.9, 1.0][g],
                    category_affinity={["Garden", "Toys", "Books"][g]: 1.0},
                )
            )
        CustomerProfile.objects.bulk_create(rows)


@pytest.mark.django_db
def test_auto_segments_stable_names(store):
    _populate(store)
    first = [(s.name, s.size) for s in build_auto_segments(store, k=3)]
    second = [(s.name, s.size) for s in build_auto_segments(store, k=3)]
    assert first == second
    assert len(first) == 3 and sum(size for _n, size in first) == 120
    assert "high spenders" in first[0][0] and "Garden" in first[0][0]
    assert any(name.startswith("Browsers") for name, _ in first)
    with store_scope(store):
        p = CustomerProfile.objects.first()
        assert p.segment_ids == [p.auto_segment_id]


@pytest.mark.django_db
def test_k_by_silhouette(store):
    _populate(store)
    segs = build_auto_segments(store)
    assert 3 <= len(segs) <= 8


def test_name_cluster_words():
    name, desc = name_cluster(
        {"recency": 300, "frequency": 1, "monetary": 900},
        {"recency": 30, "frequency": 1, "monetary": 100},
        "Home > Garden",
    )
    assert name == "Lapsed high spenders · Garden"
    assert "Home > Garden" in desc


@pytest.mark.django_db
def test_other_store_profiles_never_in_segments(store, other_store):
    _populate(store, n=60)
    _populate(other_store, n=60, seed=2)
    build_auto_segments(store, k=3)
    build_auto_segments(other_store, k=3)
    with store_scope(store):
        own = set(CustomerProfile.objects.values_list("pk", flat=True))
        for seg in Segment.objects.all():
            assert set(seg.auto_members.values_list("pk", flat=True)) <= own
        assert Segment.objects.count() == 3
    with unscoped():
        other_ids = set(CustomerProfile.objects.filter(store=other_store).values_list("pk", flat=True))
        mine = set(Segment.objects.filter(store=store).values_list("pk", flat=True))
        assert not CustomerProfile.objects.filter(pk__in=other_ids, auto_segment_id__in=mine).exists()


_ = (datetime, UTC, timedelta, Event, Category, Product)
