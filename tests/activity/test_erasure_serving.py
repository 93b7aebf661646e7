"""A served model never uses an erased customer's history again, and a merge shows at once."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from shop_recs.activity import erasure
from shop_recs.activity.models import Customer
from shop_recs.stores.scoping import store_scope, unscoped
from shop_recs.training import precompute
from shop_recs.training.artifacts import artifact_path
from shop_recs.training.models import ModelVersion
from tests.activity.conftest import T0

pytestmark = pytest.mark.django_db


def recommend(api_client, external_id: str) -> dict:
    response = api_client.get(f"/api/v1/recommendations/customer/{external_id}?n=8")
    assert response.status_code == 200, response.content
    return response.json()


def anchors(payload: dict) -> set[str]:
    return {i["reason"]["anchor_sku"] for i in payload["items"] if i.get("reason", {}).get("anchor_sku")}


def skus(payload: dict) -> list[str]:
    return [i["sku"] for i in payload["items"]]


def precomputed_row(store, customer_pk: int) -> np.ndarray | None:
    with store_scope(store):
        version = ModelVersion.objects.get(is_active=True)
    with np.load(artifact_path(version), allow_pickle=False) as archive:
        users = list(archive["shop__user_ids"])
    sidecar = precompute.load_sidecar(artifact_path(version), version.checksum, len(users), version.n_items)
    assert sidecar is not None
    return np.asarray(sidecar.user_cols[users.index(customer_pk)])


def test_erased_history_is_never_used_again(store, shop, api_client, merchant, django_capture_on_commit_callbacks):
    c0 = shop["customers"][0]  # bought M0, viewed M1 and M2
    before = recommend(api_client, "C0")
    assert anchors(before) and anchors(before) <= {"M0", "M1", "M2"}
    assert (precomputed_row(store, c0.pk) >= 0).any()

    with django_capture_on_commit_callbacks(execute=True):
        erasure.erase_customer(store, c0, erasure.Actor(via="dashboard", user=merchant))

    # The precomputed candidates of the served model for them are gone, on disk.
    assert (precomputed_row(store, c0.pk) == -1).all()
    # Unknown now: trending, with nothing of their history as an anchor.
    after = recommend(api_client, "C0")
    assert not anchors(after)
    # The same id comes back as a new customer: only the new event is history.
    add_events_via_api(api_client, "C0", "S1")
    again = recommend(api_client, "C0")
    assert anchors(again) == {"S1"}


def add_events_via_api(api_client, customer: str, sku: str, kind: str = "view", session: str = "") -> None:
    row = {"type": kind, "sku": sku, "timestamp": (T0 + timedelta(days=1)).isoformat()}
    row.update({"customer": customer} if customer else {"session_id": session})
    if kind == "purchase":
        row.update(value=10.0, quantity=1, order_id="o-x")
    response = api_client.post("/api/v1/events", row, format="json")
    assert response.status_code == 201, response.content


def test_next_training_excludes_the_erased_customer(store, shop, merchant):
    from shop_recs.training.services import train_store

    c0 = shop["customers"][0]
    erasure.erase_customer(store, c0, erasure.Actor(via="api"))
    train_store(store, algorithms=["item_knn"])
    with store_scope(store):
        version = ModelVersion.objects.get(is_active=True)
    with np.load(artifact_path(version), allow_pickle=False) as archive:
        users = set(archive["shop__user_ids"].tolist())
    assert c0.pk not in users and len(users) == 11


def test_a_merge_shows_in_the_next_recommendations(store, shop, api_client):
    """An anonymous session that bought M3 is folded into C0: M3 leaves C0's list at once
    (the store excludes purchased products) and becomes part of their history."""
    before = recommend(api_client, "C0")
    assert "M3" in skus(before)
    add_events_via_api(api_client, "", "M3", kind="purchase", session="anon-1")

    response = api_client.post("/api/v1/customers/C0/merge", {"from": "anon-1"}, format="json")
    assert response.status_code == 200 and response.json()["merged"] is True

    after = recommend(api_client, "C0")
    assert "M3" not in skus(after)


def test_merging_a_duplicate_moves_its_history(store, shop, api_client):
    """C2 (M2 bought, M3 and M0 viewed) is folded into C1 (a shirt buyer): C1's list now
    reflects mugs, and C2 no longer exists."""
    before = recommend(api_client, "C1")
    assert not ({"M0", "M2", "M3"} & anchors(before)) and "M2" in skus(before)
    response = api_client.post("/api/v1/customers/C1/merge", {"from": "C2"}, format="json")
    assert response.status_code == 200
    with unscoped():
        assert not Customer.objects.filter(store=store, external_id="C2").exists()
    assert "M2" not in skus(recommend(api_client, "C1"))


@pytest.mark.django_db(transaction=True)
def test_cached_activity_is_dropped_on_merge_and_erasure(store, shop, api_client, live_cache):
    """With the real services warm requests are answered from the per-process activity cache: a
    merge and an erasure drop it at once (the next request does not serve the old history)."""
    recommend(api_client, "C0")
    recommend(api_client, "C0")
    assert live_cache.stats()["hits"] >= 1  # the cache is really in use
    add_events_via_api(api_client, "", "M3", kind="purchase", session="anon-2")
    assert "M3" in skus(recommend(api_client, "C0"))
    recommend(api_client, "C0")  # cached again
    assert api_client.post("/api/v1/customers/C0/merge", {"from": "anon-2"}, format="json").status_code == 200
    assert "M3" not in skus(recommend(api_client, "C0"))

    recommend(api_client, "C0")  # cached again, with the merged history
    assert (store.pk, "C0") in live_cache._feed.entries
    assert api_client.delete("/api/v1/customers/C0").status_code == 200
    assert (store.pk, "C0") not in live_cache._feed.entries
    assert not anchors(recommend(api_client, "C0"))
    assert (precomputed_row(store, shop["customers"][0].pk) == -1).all()
