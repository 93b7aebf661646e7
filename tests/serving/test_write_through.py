"""Write-through of the customers' activity cache (PostgreSQL + Redis): an event is appended to the
cached activity on every process instead of dropping it, the result is what a database read returns,
and no event is counted twice, whatever order the read and the message arrive in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from django.db import connection

from shop_recs.activity import changes
from shop_recs.serving import realtime

API = "/api/v1"
ROOT = Path(__file__).resolve().parents[2]

from tests.serving.test_hot_path import _event  # noqa: E402

#: A recent minute, newer than every event of the ``shop`` fixture (2024) and not in the future.
BASE = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2)


def at(minute: int, second: int = 0) -> str:
    return (BASE + timedelta(minutes=minute, seconds=second)).isoformat()


def db_read(store_id: int, external_id: str) -> realtime.ServingCustomer:
    customer, _active = realtime.customer_activity(store_id, external_id)
    assert customer is not None
    return customer


def same_activity(cached: realtime.ServingCustomer, read: realtime.ServingCustomer) -> None:
    """The cached activity is what a database read returns now (ties in time may come in any order)."""
    a, b = cached.activity, read.activity
    assert a.purchased == b.purchased
    assert a.weights() == b.weights()
    assert sorted(zip(a.rows["us"].tolist(), a.events, strict=True)) == sorted(
        zip(b.rows["us"].tolist(), b.events, strict=True)
    )


def captured_messages(monkeypatch) -> list[dict]:
    sent: list[dict] = []
    real = changes.publish

    def publish(payload: str) -> bool:
        sent.append(json.loads(payload))
        return real(payload)

    monkeypatch.setattr(changes, "publish", publish)
    return sent


@pytest.mark.django_db(transaction=True)
def test_a_posted_event_is_appended_not_dropped(api_client, shop, store, live_cache, django_assert_num_queries):
    before = live_cache.serving_customer(store.pk, "C0")
    appended = live_cache.stats()["appended"]
    r = api_client.post(f"{API}/events", _event("C0", "S1", ts=at(0)), format="json")
    assert r.status_code == 201
    assert live_cache.stats()["appended"] == appended + 1
    with django_assert_num_queries(0):
        after = live_cache.serving_customer(store.pk, "C0")
    assert after is not before and after.memo == {}
    assert after.activity.events[0] == (shop["products"]["S1"].pk, "view")
    assert before.activity.events[0] != after.activity.events[0]  # the old entry was not changed in place
    same_activity(after, db_read(store.pk, "C0"))


@pytest.mark.django_db(transaction=True)
def test_many_events_keep_the_latest_fifty_like_a_read(api_client, shop, store, live_cache):
    live_cache.serving_customer(store.pk, "C2")
    skus = ["S0", "S1", "M2", "M3", "S2"]
    for i in range(60):
        # Out of order on purpose: some older than the ones before them, one at an equal time.
        minute = (i * 37) % 60
        event = _event("C2", skus[i % 5], kind="add_to_cart" if i % 7 == 0 else "view", ts=at(minute))
        assert api_client.post(f"{API}/events", event, format="json").status_code == 201
    buy = _event("C2", "S3", kind="purchase", ts=at(-600))  # older than the latest 50
    assert api_client.post(f"{API}/events", buy, format="json").status_code == 201
    cached = live_cache.serving_customer(store.pk, "C2")
    assert len(cached.activity.rows) == realtime.RECENT_EVENTS
    assert shop["products"]["S3"].pk in cached.activity.purchased
    same_activity(cached, db_read(store.pk, "C2"))


@pytest.mark.django_db(transaction=True)
def test_a_message_reaching_a_fresh_read_is_not_counted_twice(api_client, shop, store, live_cache, monkeypatch):
    sent = captured_messages(monkeypatch)
    live_cache.serving_customer(store.pk, "C4")
    assert api_client.post(f"{API}/events", _event("C4", "S1", ts=at(0)), format="json").status_code == 201
    (message,) = [m for m in sent if "events" in m]
    appended = live_cache.serving_customer(store.pk, "C4")
    # The same message again (this process's own publication, read back from Redis): counted once.
    live_cache._feed.append(store.pk, message["id"], message["xid"], [tuple(e) for e in message["events"]])
    assert live_cache.serving_customer(store.pk, "C4") is appended
    # A process that read the customer after the commit (its snapshot saw the transaction) gets the
    # message late: it must not add the event a second time.
    live_cache.clear()
    fresh = live_cache.serving_customer(store.pk, "C4")
    assert fresh.snapshot is not None and fresh.snapshot.saw(message["xid"])
    live_cache._feed.append(store.pk, "another-copy", message["xid"], [tuple(e) for e in message["events"]])
    assert live_cache.serving_customer(store.pk, "C4") is fresh
    same_activity(fresh, appended)


@pytest.mark.django_db(transaction=True)
def test_an_event_written_by_another_process_is_appended_here(
    shop, store, live_cache, settings, django_assert_num_queries
):
    before = live_cache.serving_customer(store.pk, "C1")
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "DJANGO_SETTINGS_MODULE": "shop_recs.settings",
    }
    events = [_event("C1", "M3", "purchase", ts=at(0)), _event("C1", "S2", ts=at(0, 1))]
    script = (
        "import django; django.setup()\n"
        "from shop_recs.stores.models import Store\n"
        "from shop_recs.activity.services import ingest_events\n"
        f"ingest_events(Store.objects.get(pk={store.pk}), {json.dumps(events)})\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # No sleep: the other process published after its commit, before it exited; the drain applies it.
    with django_assert_num_queries(0):
        after = live_cache.serving_customer(store.pk, "C1")
    assert after is not before
    assert after.activity.events[:2] == [(shop["products"]["S2"].pk, "view"), (shop["products"]["M3"].pk, "purchase")]
    assert shop["products"]["M3"].pk in after.activity.purchased
    same_activity(after, db_read(store.pk, "C1"))


@pytest.mark.django_db(transaction=True)
def test_recommendations_after_write_through_equal_a_cold_read(api_client, shop, store, live_cache):
    """The served list after an appended event is the list served from a fresh database read."""
    api_client.get(f"{API}/recommendations/customer/C6?n=6")
    for sku in ("M0", "M1", "M2"):
        assert api_client.post(f"{API}/events", _event("C6", sku, ts=at(0)), format="json").status_code == 201
    warm = api_client.get(f"{API}/recommendations/customer/C6?n=6").json()
    live_cache.clear()
    cold = api_client.get(f"{API}/recommendations/customer/C6?n=6").json()
    assert [i["sku"] for i in warm["items"]] == [i["sku"] for i in cold["items"]]
    assert [i["score"] for i in warm["items"]] == [i["score"] for i in cold["items"]]


def test_events_are_numpy_records_not_tuples():
    activity = realtime.Activity().with_events(
        [(7, changes.KIND_CODE["view"], 10), (8, changes.KIND_CODE["purchase"], 20)]
    )
    assert activity is not None and isinstance(activity.rows, np.ndarray)
    assert activity.rows.dtype == realtime.EVENT_DTYPE and activity.rows.nbytes == 2 * 17
    assert activity.events == [(8, "purchase"), (7, "view")]
    assert activity.purchased == {8}
    assert activity.weights() == {8: 5.0, 7: 1.0} and activity.recent_products == [8, 7]


@pytest.mark.django_db(transaction=True)
def test_another_databases_events_are_not_appended(shop, store, live_cache):
    """Redis pub/sub ignores the Redis database number: a deployment sharing the server hears another's
    messages. Their ids mean nothing here, so the named customers are only dropped (read again)."""
    before = live_cache.serving_customer(store.pk, "C5")
    event = [before.pk, shop["products"]["S1"].pk, changes.KIND_CODE["view"], 1]
    message = {"store": store.pk, "db": "elsewhere:5432/other", "id": "x.1", "xid": 1, "events": [event]}
    live_cache._feed._apply({"type": "message", "data": json.dumps(message).encode()})
    assert live_cache.stats()["entries"] == 0
    assert live_cache.serving_customer(store.pk, "C5").activity.events == before.activity.events
