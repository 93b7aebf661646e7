"""Training precomputes candidates only for recently active customers; the rest are still served
personally from their live history (the path of customers who joined after training)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from shop_recs.training.precompute import build_serving_arrays, recent_users

DAY = 86_400


def test_recent_users_window_and_limit():
    # rows 0..4; row 3 never appears; last events: 0 -> day 0, 1 -> day 95, 2 -> day 99, 4 -> day 100
    users = np.array([0, 1, 2, 4, 0, 1])
    ts = np.array([0, 95, 99, 100, -5, 10]) * DAY
    assert recent_users(users, ts, 5, days=90, limit=10).tolist() == [1, 2, 4]
    assert recent_users(users, ts, 5, days=90, limit=2).tolist() == [2, 4]  # the most recent two
    assert recent_users(users, None, 5, days=90, limit=2).tolist() == [0, 1, 2, 3, 4]  # no timestamps: all


class _Popularity:
    """A stand-in model: every user scores items by a fixed popularity vector."""

    def __init__(self, n_items: int) -> None:
        self.pop = np.arange(n_items, dtype=np.float32)

    def score_users(self, user_ids, rows):
        return np.tile(self.pop, (len(user_ids), 1))

    def _similar_scores(self, ids):
        return np.tile(self.pop, (len(ids), 1))


def test_only_the_chosen_rows_are_precomputed():
    x = sp.csr_matrix(np.eye(4, 6, dtype=np.float32))
    arrays = build_serving_arrays(_Popularity(6), x, n_candidates=3, users=np.array([1, 3]))
    cols = arrays["user_cols"]
    assert (cols[[0, 2]] == -1).all()  # not precomputed
    assert cols[1].tolist() == [5, 4, 3] and cols[3].tolist() == [5, 4, 2]  # own item 3 masked for row 3
    full = build_serving_arrays(_Popularity(6), x, n_candidates=3)
    assert (full["user_cols"] >= 0).all()


@pytest.mark.django_db
def test_a_customer_left_out_is_served_from_live_history(api_client, shop, settings, store):
    """Train with a 0-customer budget: nobody has precomputed candidates, everyone still gets
    history-based recommendations with "because you viewed" reasons, not just trending."""
    from shop_recs.serving.runtime import invalidate, serving_state
    from shop_recs.training.services import train_store

    settings.SERVING_PRECOMPUTE_MAX_CUSTOMERS = 0
    train_store(store, algorithms=["item_knn"])
    invalidate()
    body = api_client.get("/api/v1/recommendations/customer/C0?n=3").json()
    state = serving_state(store)
    assert state.pre is not None and (np.asarray(state.pre.user_cols) == -1).all()
    assert body["items"] and body["items"][0]["reason"]["code"] == "because_viewed"
    assert body["items"][0]["sku"].startswith("M")  # C0 likes mugs
