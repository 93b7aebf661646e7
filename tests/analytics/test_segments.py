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
    from analytics.models import StoreAnalyticsSettings

    with store_scope(store):
        scores = StoreAnalyticsSettings.objects.get().segmentation["silhouettes"]
        true_groups: dict[int, set[int]] = {}
        for p in CustomerProfile.objects.select_related("customer"):
            true_groups.setdefault(p.auto_segment_id, set()).add(int(p.customer.external_id.rsplit("-", 1)[1]) % 3)
    # The chosen k is the best silhouette tried; the frequency jitter makes k = 4 win here (one group
    # splits in two), but no segment ever mixes two of the three true groups, and every group is found.
    assert len(segs) == int(max(scores, key=scores.get)) and set(scores) == {str(k) for k in range(3, 9)}
    assert sorted(s.size for s in segs) == [18, 22, 40, 40]
    assert all(len(g) == 1 for g in true_groups.values()) and set().union(*true_groups.values()) == {0, 1, 2}


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


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("rules", "groups"),
    [
        # _populate: group 0 recency 5, group 1 recency 200, group 2 never bought (NULL)
        ({"field": "recency_days", "op": "between", "value": [5, 200]}, {0, 1}),  # both ends inclusive
        ({"field": "recency_days", "op": "between", "value": [5, 199]}, {0}),
        ({"field": "recency_days", "op": "!=", "value": 5}, {1, 2}),  # NULL rows stay in
        ({"field": "recency_days", "op": "<=", "value": 5}, {0}),
        ({"field": "recency_days", "op": "<", "value": 5}, set()),
        ({"field": "recency_days", "op": ">=", "value": 200}, {1}),
        ({"field": "category_affinity", "key": "Toys", "op": ">=", "value": 1.0}, {1}),
        ({"not": {"field": "recency_days", "op": "<=", "value": 5}}, {1, 2}),
    ],
)
def test_rule_segment_members_and_segment_ids(store, rules, groups):
    from analytics.segments import refresh_segment_memberships, segment_queryset

    _populate(store, n=30)
    with store_scope(store):
        seg = Segment.objects.create(store=store, kind=Segment.Kind.RULE, name="rule", rules=rules)
        order = {p.customer.external_id: p.pk for p in CustomerProfile.objects.select_related("customer")}
        want = {pk for ext, pk in order.items() if int(ext.rsplit("-", 1)[1]) % 3 in groups}
        assert set(segment_queryset(seg).values_list("pk", flat=True)) == want
    members = refresh_segment_memberships(store)
    assert members[seg.pk] == want
    with store_scope(store):
        seg.refresh_from_db()
        assert seg.size == len(want)
        tagged = {p.pk for p in CustomerProfile.objects.all() if seg.pk in p.segment_ids}
        assert tagged == want
