"""Differential privacy where it is used: the Segments page with ``dp_epsilon`` set shows noised,
floored counts and suppresses small cells; without it every count is exact. The other reporting
paths (audience size, segment detail) suppress small cells."""

from __future__ import annotations

import json

import numpy as np
import pytest
from django.urls import reverse

from analytics.models import CustomerProfile, Segment
from analytics.services import get_settings
from shop_recs.activity.models import Customer
from shop_recs.stores.scoping import store_scope, unscoped

pytestmark = pytest.mark.django_db

BIG, SMALL, K = 200, 3, 5  # true sizes of the two rule segments; min_cell_size


def _url(name, store, **kw):
    return reverse(f"analytics:{name}", kwargs={"store_slug": store.slug, **kw})


@pytest.fixture
def profiled(store):
    """BIG + SMALL profiles: the SMALL ones are heavy buyers (frequency 10), the rest buy once.

    Rule segments: "buyers" (frequency >= 1, all BIG + SMALL) and "heavy" (frequency >= 10, SMALL).
    RFM cells: BIG profiles in (r=3, f=2), SMALL profiles in (r=5, f=5).
    """
    with unscoped():
        customers = Customer.objects.bulk_create(
            [Customer(store=store, external_id=f"c{i}") for i in range(BIG + SMALL)]
        )
        customers = list(Customer.objects.filter(store=store).order_by("pk"))
        CustomerProfile.objects.bulk_create(
            [
                CustomerProfile(
                    store=store,
                    customer=c,
                    frequency=10 if i < SMALL else 1,
                    monetary=100.0,
                    recency_days=5.0,
                    r_score=5 if i < SMALL else 3,
                    f_score=5 if i < SMALL else 2,
                )
                for i, c in enumerate(customers)
            ]
        )
        buyers = Segment.objects.create(
            store=store, name="buyers", kind="rule", rules={"field": "frequency", "op": ">=", "value": 1}
        )
        heavy = Segment.objects.create(
            store=store, name="heavy", kind="rule", rules={"field": "frequency", "op": ">=", "value": 10}
        )
    return {"store": store, "buyers": buyers, "heavy": heavy}


def _set(store, **values):
    cfg = get_settings(store)
    for name, value in values.items():
        setattr(cfg, name, value)
    with store_scope(store):
        cfg.save()


def _page(client, store) -> dict:
    r = client.get(_url("segments", store))
    assert r.status_code == 200
    data = r.context["data"]
    names = [s.name for s in data["segments"]]
    sizes = dict(zip(names, data["sizes"], strict=True))
    shown = {row["segment"].name: row["size"] for row in r.context["rows"]}
    return {"sizes": sizes, "shown": shown, "overlap": data["overlap"], "rfm": data["rfm"], "html": r.content.decode()}


def test_without_epsilon_the_segments_page_is_exact(client, merchant, profiled):
    store = profiled["store"]
    _set(store, dp_epsilon=None, min_cell_size=K)
    client.force_login(merchant)
    for _ in range(3):
        page = _page(client, store)
        assert page["sizes"] == {"buyers": BIG + SMALL, "heavy": None}  # 3 < k: suppressed
        assert page["shown"] == {"buyers": f"{BIG + SMALL:,}", "heavy": f"<{K}"}
        assert page["overlap"] == [[BIG + SMALL, None], [None, None]]
        expected_rfm = [[None] * 5 for _ in range(5)]
        expected_rfm[3 - 1][2 - 1] = BIG  # the SMALL cell (5, 5) is suppressed
        assert page["rfm"] == expected_rfm
        assert "Laplace noise" not in page["html"]


def test_with_epsilon_the_segments_page_is_noised_bounded_and_suppressed(client, merchant, profiled):
    store = profiled["store"]
    eps = 0.25  # Laplace scale b = sensitivity / eps = 4
    _set(store, dp_epsilon=eps, min_cell_size=K)
    client.force_login(merchant)
    true = BIG + SMALL
    big_sizes, big_rfm = [], []
    for _ in range(30):
        page = _page(client, store)
        # Small cells stay suppressed whatever the noise: suppression comes before noise.
        assert page["sizes"]["heavy"] is None and page["shown"]["heavy"] == f"<{K}"
        assert page["overlap"][0][1] is None and page["overlap"][1][1] is None
        assert page["rfm"][5 - 1][5 - 1] is None
        # Empty cells are never turned into small numbers by the noise.
        assert all(v is None for i, row in enumerate(page["rfm"]) for j, v in enumerate(row) if (i, j) != (2, 1))
        size = page["sizes"]["buyers"]
        assert isinstance(size, int) and size >= K  # rounded, floored at k
        assert page["shown"]["buyers"] == f"{size:,}"
        assert f"(ε = {eps})" in page["html"]
        big_sizes.append(size)
        big_rfm.append(page["rfm"][3 - 1][2 - 1])
    errors = np.array(big_sizes + big_rfm, dtype=float) - np.array([true] * 30 + [BIG] * 30)
    # Noised: fresh noise per request, so the counts are not the true ones and they vary.
    assert len(set(big_sizes)) > 3 and np.count_nonzero(errors) > 30
    # Sensible bound: P(|Laplace(b=4)| > 60) = e^-15 per cell.
    assert np.abs(errors).max() <= 60
    # Unbiased and on the right scale: the mean |error| of Laplace(b) is b (rounding shifts it a little).
    assert abs(errors.mean()) < 4  # 5.5 standard errors
    assert 2.0 < np.abs(errors).mean() < 7.0


def test_smaller_epsilon_means_more_noise(client, merchant, profiled):
    store = profiled["store"]
    client.force_login(merchant)
    spread = {}
    for eps in (10.0, 0.2):
        _set(store, dp_epsilon=eps, min_cell_size=K)
        sizes = [_page(client, store)["sizes"]["buyers"] for _ in range(30)]
        spread[eps] = np.mean(np.abs(np.array(sizes) - (BIG + SMALL)))
    # b = 0.1 rounds to the true count almost always; b = 5 gives a mean |error| near 5.
    assert spread[10.0] < 0.5 < 1.5 < spread[0.2]


def test_audience_size_is_suppressed_below_k(client, analyst, profiled):
    store = profiled["store"]
    _set(store, dp_epsilon=None, min_cell_size=K)
    client.force_login(analyst)
    url = _url("audience", store)

    def audience(value):
        body = json.dumps({"rules": {"field": "frequency", "op": ">=", "value": value}})
        r = client.post(url, body, content_type="application/json")
        assert r.status_code == 200
        return r.json()

    assert audience(1) == {"ok": True, "count": BIG + SMALL, "display": f"{BIG + SMALL:,}"}
    assert audience(10) == {"ok": True, "count": None, "display": f"<{K}"}
    assert audience(11) == {"ok": True, "count": None, "display": f"<{K}"}  # zero is a small cell too
    _set(store, min_cell_size=SMALL)
    assert audience(10) == {"ok": True, "count": SMALL, "display": str(SMALL)}


def test_segment_detail_suppresses_size_and_sample_below_k(client, analyst, profiled):
    from analytics.segments import refresh_segment_memberships

    store = profiled["store"]
    refresh_segment_memberships(store)  # caches the rule segments' summaries (size)
    _set(store, dp_epsilon=None, min_cell_size=K)
    client.force_login(analyst)
    heavy = client.get(_url("segment_detail", store, segment_id=profiled["heavy"].pk))
    assert heavy.status_code == 200
    assert heavy.context["size_display"] == f"<{K}"
    assert heavy.context["sample"] == []  # 3 customers: no member list either
    buyers = client.get(_url("segment_detail", store, segment_id=profiled["buyers"].pk))
    assert buyers.context["size_display"] == f"{BIG + SMALL:,}"
    assert len(buyers.context["sample"]) == 25
    _set(store, min_cell_size=SMALL)
    heavy = client.get(_url("segment_detail", store, segment_id=profiled["heavy"].pk))
    assert heavy.context["size_display"] == str(SMALL)
    assert len(heavy.context["sample"]) == SMALL
