from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from analytics.models import CustomerProfile, ProfileRun
from analytics.profiles import ProfileConfig, churn_risk, compute_profiles, quintile_scores, read_events, read_products
from analytics.services import build_profiles
from shop_recs.stores.scoping import store_scope

from .conftest import AS_OF


def _frame(shop):
    with store_scope(shop["store"]):
        ev, prods = read_events(), read_products()
    ids = np.array([c.pk for c in shop["customers"]])
    return compute_profiles(ev, ids, prods, AS_OF, ProfileConfig()), shop["customers"]


def test_quintiles_with_ties():
    s = pd.Series([10, 20, 30, 40, 50])
    assert quintile_scores(s).tolist() == [1, 2, 3, 4, 5]
    ties = pd.Series([10, 10, 20, 30, 40])  # average ranks 1.5 1.5 3 4 5
    assert quintile_scores(ties).tolist() == [2, 2, 3, 4, 5]
    assert quintile_scores(pd.Series([5.0, 1.0]), higher_is_better=False).tolist() == [3, 5]


@pytest.mark.django_db
def test_rfm_aov_and_scores(shop):
    df, (c1, c2, c3, c4, c5, c6) = _frame(shop)
    r = df.loc[c1.pk]
    assert r.frequency == 2 and r.monetary == 800.0 and r.aov == 400.0
    assert r.recency_days == pytest.approx(10.0)
    assert df.loc[c2.pk].frequency == 1 and df.loc[c2.pk].monetary == 40.0  # one order, 10 + 3*10
    assert df.loc[c3.pk].frequency == 3 and df.loc[c3.pk].monetary == 60.0  # no order id: each line is an order
    assert df.loc[c4.pk].frequency == 0 and math.isnan(df.loc[c4.pk].recency_days)
    # Buyers c1 c2 c3 c5: monetary 800 40 60 900 -> ranks 3 1 2 4 of 4 -> ceil(5*r/4) = 4 2 3 5
    assert [df.loc[c.pk].m_score for c in (c1, c2, c3, c5)] == [4, 2, 3, 5]
    # recency 10 100 5 200; smaller is better -> ranks 3 2 4 1 -> 4 3 5 2
    assert [df.loc[c.pk].r_score for c in (c1, c2, c3, c5)] == [4, 3, 5, 2]
    assert (df.loc[c4.pk].r_score, df.loc[c4.pk].f_score, df.loc[c4.pk].m_score) == (1, 1, 1)


@pytest.mark.django_db
def test_affinity_normalised_and_decayed(shop):
    df, (c1, *_rest) = _frame(shop)
    aff = df.loc[c1.pk].category_affinity
    # purchases weigh 5, views 1, decay half-life 30 d: E2 at 40 d, E1 at 10 d, view of Home at 10 d
    e = 5 * 0.5 ** (40 / 30) + 5 * 0.5 ** (10 / 30)
    h = 1 * 0.5 ** (10 / 30)
    assert sum(aff.values()) == pytest.approx(1.0, abs=1e-5)
    assert aff["Electronics"] == pytest.approx(e / (e + h), abs=1e-5)
    assert list(aff) == ["Electronics", "Home"]  # sorted by share
    assert df.loc[c1.pk].brand_affinity["Acme"] == pytest.approx(e / (e + h), abs=1e-5)


@pytest.mark.django_db
def test_price_band(shop):
    df, (c1, c2, c3, c4, c5, _c6) = _frame(shop)
    # Electronics median price 200, Home 20. c1 paid 600 (3.0) and 100 (0.5): mean 1.75 -> premium
    assert df.loc[c1.pk].price_ratio == pytest.approx(1.75) and df.loc[c1.pk].price_band == "premium"
    assert df.loc[c2.pk].price_ratio == pytest.approx(0.5) and df.loc[c2.pk].price_band == "budget"
    assert df.loc[c3.pk].price_band == "mid"
    # c4 never bought: viewed E1 (catalog 100 vs median 200)
    assert df.loc[c4.pk].price_ratio == pytest.approx(0.5)


@pytest.mark.django_db
def test_churn_formula(shop):
    df, (c1, c2, c3, c4, c5, c6) = _frame(shop)
    # c1: one gap of 30 days, 10 days since -> 1 - exp(-10 / 60)
    assert df.loc[c1.pk].median_gap_days == pytest.approx(30.0)
    assert df.loc[c1.pk].churn_risk == pytest.approx(1 - math.exp(-10 / 60), abs=1e-4)
    # population prior = median of (30, 5) = 17.5 for single-order customers
    assert df.loc[c5.pk].churn_risk == pytest.approx(1 - math.exp(-200 / 35), abs=1e-4)
    assert df.loc[c6.pk].churn_risk == 1.0
    assert churn_risk(np.array([0.0]), np.array([10.0]))[0] == 0.0


@pytest.mark.django_db
def test_habits_and_sessions(shop):
    df, (c1, c2, c3, c4, c5, c6) = _frame(shop)
    c4row = df.loc[c4.pk]
    assert c4row.events == 2 and c4row.sessions == 1  # 10 minutes apart: one session
    assert c4row.mean_session_events == 2.0 and math.isnan(c4row.views_per_purchase)
    assert sum(c4row.hour_histogram) == 2 and len(c4row.dow_histogram) == 7
    day = (AS_OF - timedelta(days=1)).weekday()
    assert c4row.dow_histogram[day] == 2
    assert df.loc[c3.pk].sessions == 3
    assert df.loc[c1.pk].views_per_purchase == 0.5


@pytest.mark.django_db
def test_incremental_touches_only_changed(shop, add_event):
    store = shop["store"]
    build_profiles(store, "full", segment=False, as_of=AS_OF)
    c1, c2 = shop["customers"][:2]
    with store_scope(store):
        before = {p.customer_id: p.computed_at for p in CustomerProfile.objects.all()}
        assert len(before) == 6
    add_event(store, c2, "purchase", shop["products"][0], days_ago=0, value=100, qty=1, order="new")
    later = AS_OF + timedelta(hours=1)
    run = build_profiles(store, ProfileRun.Mode.INCREMENTAL, segment=False, as_of=later)
    assert run.n_customers == 1
    with store_scope(store):
        after = {p.customer_id: p for p in CustomerProfile.objects.all()}
    assert after[c2.pk].computed_at == later and after[c2.pk].frequency == 2
    assert all(after[c].computed_at == before[c] for c in before if c != c2.pk)


def test_predicted_interests_come_from_the_active_model(shop):
    from shop_recs.training.services import train_store

    store = shop["store"]
    train_store(store, algorithms=["item_knn"])
    build_profiles(store, "full", as_of=AS_OF)
    with store_scope(store):
        c4 = CustomerProfile.objects.get(customer__external_id="c4")  # viewed E1 (Electronics) only
    assert c4.predicted_interests, "a customer the model knows gets predicted categories"
    names = [entry[0] for entry in c4.predicted_interests]
    shares = [entry[1] for entry in c4.predicted_interests]
    assert set(names) <= {"Electronics", "Home"}
    assert sum(shares) == pytest.approx(1.0, abs=1e-6)


def test_recency_is_measured_from_the_stores_latest_event(shop):
    """An imported history is profiled as of its end, not as of today's date."""
    run = build_profiles(shop["store"], "full")  # no as_of
    assert run.status == "succeeded"
    with store_scope(shop["store"]):
        c1 = CustomerProfile.objects.get(customer__external_id="c1")
    # The shop's latest event is c4's view 1 day before AS_OF; c1 last bought 10 days before AS_OF.
    assert c1.recency_days == pytest.approx(9.0, abs=0.01)
