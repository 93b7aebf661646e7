"""The serving hot path without database round trips: cached API keys, cached active version,
buffered list log, and the customers' activity cache kept fresh through Redis pub/sub."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.db import connection

from shop_recs.activity import changes
from shop_recs.api import auth
from shop_recs.platform import logbuffer
from shop_recs.serving import live_activity, responses, runtime
from shop_recs.serving import services as serving
from shop_recs.serving.models import RecommendationList
from shop_recs.stores.models import ApiKey
from shop_recs.stores.scoping import unscoped
from shop_recs.training.models import ModelVersion

API = "/api/v1"
ROOT = Path(__file__).resolve().parents[2]


def skus(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["sku"] for item in response.json()["items"]]


# --- API keys ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_cached_key_still_checks_the_secret(store, api_key):
    assert auth.store_for_raw_key(api_key).pk == store.pk
    prefix = ApiKey.prefix_of(api_key)
    forged = f"sr_{prefix}_{'x' * 43}"
    assert auth.store_for_raw_key(forged) is None
    assert auth.store_for_raw_key("sr_nope_secret") is None
    assert auth.store_for_raw_key("not a key") is None
    # Each call hands out its own Store instance: nothing cached on one request's store leaks.
    assert auth.store_for_raw_key(api_key) is not auth.store_for_raw_key(api_key)


@pytest.mark.django_db
def test_revoked_here_is_refused_at_once(api_client, store):
    assert api_client.get(f"{API}/recommendations/customer/C0").status_code == 200
    with unscoped():
        ApiKey.objects.get(store=store).revoke()
    r = api_client.get(f"{API}/recommendations/customer/C0")
    assert r.status_code == 401
    assert "revoked" in r.content.decode()


@pytest.mark.django_db
def test_revoked_elsewhere_is_refused_within_the_cache_window(api_client, store, settings, monkeypatch):
    settings.API_KEY_CACHE_SECONDS = 5
    assert api_client.get(f"{API}/recommendations/customer/C0").status_code == 200
    # Another process revokes the key: this process has not been told and trusts its copy...
    with unscoped():
        ApiKey.objects.filter(store=store).update(revoked_at="2026-01-01T00:00:00Z")
    assert api_client.get(f"{API}/recommendations/customer/C0").status_code == 200
    # ... until the copy is older than API_KEY_CACHE_SECONDS.
    later = time.monotonic() + 6
    monkeypatch.setattr(auth.time, "monotonic", lambda: later)
    assert api_client.get(f"{API}/recommendations/customer/C0").status_code == 401


# --- active model version ---------------------------------------------------------------------


@pytest.mark.django_db
def test_activation_here_serves_the_new_version_at_once(api_client, shop, store):
    from shop_recs.training.activation import activate_version
    from shop_recs.training.services import train_store

    first = api_client.get(f"{API}/recommendations/customer/C0").json()["model_version"]
    train_store(store, algorithms=["popularity"])
    with unscoped():
        newest = ModelVersion.objects.filter(store=store).latest("pk")
    activate_version(newest)
    assert newest.pk != first
    assert api_client.get(f"{API}/recommendations/customer/C0").json()["model_version"] == newest.pk
    assert api_client.get(f"{API}/products/M0/similar").json()["model_version"] == newest.pk


@pytest.mark.django_db
def test_activation_elsewhere_is_seen_within_the_ttl(shop, store, settings, monkeypatch):
    settings.SERVING_ACTIVE_VERSION_TTL = 5
    active = runtime.active_version_id(store.pk)
    with unscoped():
        ModelVersion.objects.filter(store=store).update(is_active=False)
    assert runtime.active_version_id(store.pk) == active  # trusted for the TTL
    later = time.monotonic() + 6
    monkeypatch.setattr(runtime.time, "monotonic", lambda: later)
    assert runtime.active_version_id(store.pk) == 0


# --- list log ---------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_buffered_list_log_is_written_by_the_flusher(api_client, shop, settings):
    settings.SERVING_LOG_BUFFER_ROWS = 1000
    settings.SERVING_LOG_FLUSH_MS = 50
    body = api_client.get(f"{API}/recommendations/customer/C0?placement=home").json()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with unscoped():
            if RecommendationList.objects.filter(list_id=body["list_id"]).exists():
                break
        time.sleep(0.05)
    with unscoped():
        row = RecommendationList.objects.get(list_id=body["list_id"])
    assert row.placement == "home" and row.model_version_id == body["model_version"]
    assert len(row.product_ids) == len(body["items"])


@pytest.mark.django_db(transaction=True)
def test_buffered_rows_survive_a_failed_flush(shop, settings, monkeypatch):
    settings.SERVING_LOG_BUFFER_ROWS = 10_000
    settings.SERVING_LOG_FLUSH_MS = 3_600_000  # only explicit flushes in this test
    state = serving.serving_state(shop["customers"][0].store)
    ids = [responses.log_list(state, "customer", [], placement=f"p{i}") for i in range(3)]
    table = responses.LIST_LOG
    # Refused on every database alike (too few placeholders for the row: a ProgrammingError). A missing
    # table would not do: SQLite reports it as an OperationalError, which the flusher takes for an outage.
    refused = f"INSERT INTO {RecommendationList._meta.db_table} (list_id) VALUES (%s)"
    broken = {key: refused for key in [(connection.vendor, False)]}
    monkeypatch.setattr(table, "_sql", broken)
    assert table.flush() == 0  # the database refused: logged, rows kept
    assert table.pending == 3
    monkeypatch.setattr(table, "_sql", {})
    assert logbuffer.flush_all() == 3
    with unscoped():
        assert set(RecommendationList.objects.values_list("placement", flat=True)) >= {"p0", "p1", "p2"}
        assert RecommendationList.objects.filter(list_id__in=ids).count() == 3


def test_pending_rows_are_bounded(monkeypatch):
    table = logbuffer.LogTable("test rows", lambda: "INSERT INTO t (a) VALUES (%s)")
    try:
        monkeypatch.setattr(logbuffer, "MAX_PENDING_ROWS", 5)
        table._requeue([[i] for i in range(8)])
        assert table.pending == 5 and table.dropped == 3
        assert table._rows[0] == [3]  # the oldest were dropped
    finally:
        logbuffer._tables.remove(table)


# --- the customers' activity cache (PostgreSQL + Redis) ----------------------------------------


def _event(customer: str, sku: str, kind: str = "view", ts: str = "2024-06-03T12:00:00Z") -> dict:
    event = {"customer": customer, "type": kind, "sku": sku, "timestamp": ts}
    if kind == "purchase":
        event["order_id"] = "o-live"
    return event


@pytest.mark.django_db(transaction=True)
def test_cache_answers_without_a_query_and_drops_on_a_local_event(shop, store, live_cache, django_assert_num_queries):
    first = live_cache.serving_customer(store.pk, "C0")
    assert first is not None and first.activity.events
    with django_assert_num_queries(0):
        again = live_cache.serving_customer(store.pk, "C0")
    assert again is first
    from shop_recs.activity.services import ingest_events

    ingest_events(store, [_event("C0", "S1")])
    fresh = live_cache.serving_customer(store.pk, "C0")
    assert fresh is not first
    assert fresh.activity.events[0] == (shop["products"]["S1"].pk, "view")


@pytest.mark.django_db
def test_reads_inside_a_transaction_are_not_cached(shop, store, live_cache):
    # The test runs inside a transaction: the read may have seen uncommitted rows, so it stays uncached.
    assert live_cache.serving_customer(store.pk, "C0") is not None
    assert live_cache.stats()["entries"] == 0


@pytest.mark.django_db(transaction=True)
def test_an_event_written_by_another_process_changes_the_next_answer(shop, store, live_cache, settings):
    before = live_cache.serving_customer(store.pk, "C1")
    assert live_cache.serving_customer(store.pk, "C1") is before  # cached
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "DJANGO_SETTINGS_MODULE": "shop_recs.settings",
    }
    script = (
        "import django; django.setup()\n"
        "from shop_recs.stores.models import Store\n"
        "from shop_recs.activity.services import ingest_events\n"
        f"ingest_events(Store.objects.get(pk={store.pk}), {json.dumps([_event('C1', 'M3', 'purchase')])})\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # No sleep: the other process published after its commit, before it exited.
    after = live_cache.serving_customer(store.pk, "C1")
    assert after is not before
    assert shop["products"]["M3"].pk in after.activity.purchased


@pytest.mark.django_db(transaction=True)
def test_realtime_through_the_api_with_the_cache_on(api_client, shop, live_cache):
    before = skus(api_client.get(f"{API}/recommendations/customer/C0?n=10"))
    assert skus(api_client.get(f"{API}/recommendations/customer/C0?n=10")) == before
    assert live_cache.stats()["hits"] >= 1
    for _ in range(3):
        assert api_client.post(f"{API}/events", _event("C0", "S1"), format="json").status_code == 201
    after = skus(api_client.get(f"{API}/recommendations/customer/C0?n=10"))
    shirt = lambda xs: min(xs.index(s) for s in xs if s.startswith("S"))  # noqa: E731
    assert shirt(after) < shirt(before)


@pytest.mark.django_db(transaction=True)
def test_lost_subscription_falls_back_to_the_database(shop, store, live_cache, settings):
    live_cache.serving_customer(store.pk, "C2")
    assert live_cache.stats()["entries"] == 1
    # Redis goes away: the next health check fails, the cache empties and requests read the database.
    live_cache._feed.pubsub.connection.disconnect()
    live_cache._feed.pubsub.connection.connect = lambda: (_ for _ in ()).throw(ConnectionError("down"))
    customer = live_cache.serving_customer(store.pk, "C2")
    assert customer is not None and customer.activity.events
    assert live_cache.stats()["entries"] == 0


@pytest.mark.django_db(transaction=True)
def test_a_change_during_the_read_is_not_cached(shop, store, live_cache, monkeypatch):
    real = live_activity.realtime.customer_activity

    def racing_read(store_id, external_id):
        result = real(store_id, external_id)
        changes.customers_changed(store_id, [result[0].pk])  # a write lands while we read
        return result

    monkeypatch.setattr(live_activity.realtime, "customer_activity", racing_read)
    assert live_cache.serving_customer(store.pk, "C3") is not None
    assert live_cache.stats()["entries"] == 0


def test_malformed_messages_are_ignored(caplog):
    feed = live_activity._Feed()
    feed._apply({"type": "message", "data": b"{not json"})
    feed._apply({"type": "message", "data": json.dumps({"store": 1}).encode()})
    assert "malformed activity change" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_one_refused_row_does_not_hold_the_others_back(shop, settings):
    settings.SERVING_LOG_BUFFER_ROWS = 10_000
    settings.SERVING_LOG_FLUSH_MS = 3_600_000
    state = serving.serving_state(shop["customers"][0].store)
    good = responses.log_list(state, "customer", [], placement="kept")
    table = responses.LIST_LOG
    # A row of a store that no longer exists (deleted between the request and the flush).
    template = table._rows[-1]
    orphan_id = uuid.uuid4()
    table.write(
        [
            999_999,
            orphan_id.hex if connection.vendor == "sqlite" else orphan_id,
            *template[2:3],
            "orphan",
            *template[4:],
        ]
    )
    dropped = table.dropped
    assert logbuffer.flush_all() == 1
    assert table.pending == 0 and table.dropped == dropped + 1
    with unscoped():
        assert RecommendationList.objects.filter(list_id=good).exists()
        assert not RecommendationList.objects.filter(placement="orphan").exists()


@pytest.mark.django_db
def test_expired_catalog_snapshot_is_kept_while_the_catalog_is_unchanged(shop, store, settings):
    from shop_recs.catalog.models import Product
    from shop_recs.serving.snapshot import catalog_snapshot

    settings.SERVING_CATALOG_TTL = 0  # every call re-checks
    first = catalog_snapshot(store)
    assert catalog_snapshot(store) is first  # same fingerprint: kept
    with unscoped():
        Product.objects.filter(store=store, sku="M1").update(price=99, updated_at="2030-01-01T00:00:00Z")
    changed = catalog_snapshot(store)
    assert changed is not first
    assert changed.prices[changed.index[shop["products"]["M1"].pk]] == 99


def test_gc_freeze_after_the_warm_up_and_then_ever_more_rarely(settings, monkeypatch):
    import gc

    from shop_recs.platform import gcfreeze

    calls = []
    monkeypatch.setattr(gcfreeze, "_pid", 0)
    monkeypatch.setattr(gc, "freeze", lambda: calls.append(gcfreeze._served))
    monkeypatch.setattr(gc, "collect", lambda *a: None)
    settings.SERVING_GC_FREEZE_AFTER = 3
    for _ in range(400):
        gcfreeze.note_request()
    assert calls == [3, 30, 300]
    settings.SERVING_GC_FREEZE_AFTER = 0
    monkeypatch.setattr(gcfreeze, "_pid", 0)
    for _ in range(10):
        gcfreeze.note_request()
    assert calls == [3, 30, 300]  # 0: never


@pytest.mark.django_db
def test_fast_path_json_equals_drf_rendering(api_client, shop):
    """The hot path encodes with orjson; the values must be what DRF's renderer would send."""
    from rest_framework.renderers import JSONRenderer

    from shop_recs.api.fastpath import json_response

    payload = api_client.get(f"{API}/recommendations/customer/C0?n=5").json()
    payload["items"][0]["title"] = "白色 mug \u2028 “quoted”"
    fast = json_response(payload)
    assert fast["Content-Type"] == "application/json" and fast["Vary"] == "Accept"
    assert json.loads(fast.content) == json.loads(JSONRenderer().render(payload))
    assert b"\\u2028" in fast.content and "白色".encode() in fast.content


# --- the served-page memo on a cached customer ------------------------------------------------------


@pytest.mark.django_db
def test_page_memo_repeats_a_page_and_follows_rules_language_and_params(shop, store, monkeypatch):
    from django.utils import translation

    from shop_recs.serving import realtime
    from shop_recs.serving.models import StoreRules

    customer, _ = realtime.customer_activity(store.pk, "C0")  # what the activity cache holds
    ranked = []
    real_rank = serving.rank_positions
    monkeypatch.setattr(serving, "rank_positions", lambda *a, **k: ranked.append(1) or real_rank(*a, **k))

    def serve(**kw):
        with translation.override(kw.pop("lang", "en")):
            return serving.recommend_for_customer(store, customer, n=kw.pop("n", 3), placement="home", **kw)

    first = serve()
    calls = len(ranked)
    again = serve()
    assert len(ranked) == calls  # served from the memo: nothing ranked again
    assert again.items == first.items and again.list_id != first.list_id
    with unscoped():
        assert RecommendationList.objects.filter(list_id__in=[first.list_id, again.list_id]).count() == 2

    assert len(serve(n=2).items) == 2 and len(ranked) > calls  # other params: computed
    chinese = serve(lang="zh-hans")
    assert chinese.items[0]["reason"]["text"] != first.items[0]["reason"]["text"]

    top = first.items[0]["sku"]
    with unscoped():
        rules, _ = StoreRules.objects.get_or_create(store=store)
        rules.blocked_product_ids = [shop["products"][top].pk]
        rules.save()  # a new rules value: the memo no longer applies
    assert top not in [item["sku"] for item in serve().items]


@pytest.mark.django_db(transaction=True)
def test_the_keepalive_thread_resubscribes_after_a_loss(shop, store, live_cache):
    feed = live_cache._feed
    feed._lost(RuntimeError("connection reset"))
    assert not feed.healthy()  # requests read the database meanwhile; none waits on a reconnect
    deadline = time.monotonic() + 10
    while not feed.healthy():
        assert time.monotonic() < deadline, "the keep-alive thread did not resubscribe"
        time.sleep(0.1)
    live_cache.serving_customer(store.pk, "C4")
    assert live_cache.stats()["entries"] == 1  # caching again
