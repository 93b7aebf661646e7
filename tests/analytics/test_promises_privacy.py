"""Differential privacy where it is used: the Segments page with ``dp_epsilon`` set shows noisy
counts, fixed per data version and thresholded after the noise; without it every count is exact and
small cells are suppressed on the true count (the audience size and the segment detail too)."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from analytics import privacy
from analytics.models import CustomerProfile, Segment
from analytics.services import get_settings
from shop_recs.activity.models import Customer
from shop_recs.stores.scoping import store_scope, unscoped

pytestmark = pytest.mark.django_db

BIG, SMALL, K = 200, 3, 5  # true sizes of the two rule segments; min_cell_size
KEY = "ab" * 32  # a fixed noise key: the draws, and so these tests, are deterministic


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


def _new_data_version(store, external_id: str) -> None:
    """One more profile that buys nothing, so it is in no segment and no RFM cell the tests read."""
    with store_scope(store):
        c = Customer.objects.create(store=store, external_id=external_id)
        CustomerProfile.objects.create(store=store, customer=c, frequency=0)


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


def test_with_epsilon_the_segments_page_is_noised_fixed_and_thresholded_after_the_noise(client, merchant, profiled):
    store = profiled["store"]
    eps = 0.25  # discrete Laplace scale b = 1 / eps = 4 per count
    _set(store, dp_epsilon=eps, min_cell_size=K, dp_budget=100.0, noise_key=KEY)
    client.force_login(merchant)
    pages = [_page(client, store) for _ in range(5)]
    first = pages[0]
    # Fixed per data version: every reload shows the very same figures, so averaging removes nothing.
    for page in pages[1:]:
        assert (page["sizes"], page["overlap"], page["rfm"], page["shown"]) == (
            first["sizes"],
            first["overlap"],
            first["rfm"],
            first["shown"],
        )
    assert f"ε = {eps} per count" in first["html"]
    released = [v for v in [*first["sizes"].values(), first["overlap"][0][1], *sum(first["rfm"], [])] if v is not None]
    assert all(isinstance(v, int) and v >= K for v in released)  # thresholded after the noise, at k
    # Noised: the big cells are not the true counts, and stay within 3x OpenDP's 95% bound.
    # One data version's two draws are both 0 with P ~ 1.5% (discrete Laplace, b >= 4), and the
    # version hashes pks and timestamps, so CI hit it once. Six versions: P(all exact) < 1e-10;
    # the old code, which added no noise, shows the true counts on every one.
    bound = 3 * privacy.accuracy(1 / eps)
    errors, page = [], first
    for version in range(6):
        if version:
            _new_data_version(store, f"extra{version}")
            page = _page(client, store)
        errors.append((page["sizes"]["buyers"] - (BIG + SMALL), page["rfm"][3 - 1][2 - 1] - BIG))
    assert all(abs(e) <= bound for pair in errors for e in pair), errors
    assert any(pair != (0, 0) for pair in errors), errors


def test_with_epsilon_suppression_follows_the_noisy_value(client, merchant, profiled):
    """Across data versions the 3-customer segment (k = 5) is shown now and then and the big one
    moves: the old code suppressed on the true count (never shown) and reused nothing per version."""
    store = profiled["store"]
    _set(store, dp_epsilon=0.5, min_cell_size=K, dp_budget=1_000.0, noise_key=KEY)
    client.force_login(merchant)
    heavy_shown, buyers = 0, []
    for version in range(40):
        _new_data_version(store, f"extra{version}")
        page = _page(client, store)
        heavy_shown += page["sizes"]["heavy"] is not None
        buyers.append(page["sizes"]["buyers"])
    assert 0 < heavy_shown < 40
    assert len(set(buyers)) > 3  # fresh noise for each data version


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
