"""Serving's per-process caches while the database is unreachable (issue 12 §4).

The outage is Django's own hook: ``connection.execute_wrapper`` runs around every query of this
thread's connection, and ``database_down`` makes it raise the ``OperationalError`` a stopped server
gives (it counts the attempts, so the back-off is visible). Nothing of the code under test is patched.
Every cache must keep serving its last value when its re-read fails, try again only after the
back-off, and raise for what it has never held; the API answers a JSON 503 with Retry-After.
"""

from __future__ import annotations

import contextlib

import pytest
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from shop_recs.api import auth
from shop_recs.platform import logbuffer
from shop_recs.serving import experiments, live_activity, responses, rules, rules_snapshot, runtime, snapshot
from shop_recs.serving.models import RecommendationList
from shop_recs.stores.models import ApiKey
from shop_recs.stores.scoping import unscoped

pytestmark = pytest.mark.django_db(transaction=True)
API = "/api/v1"


class Outage:
    """Counts the queries attempted while the database is "down"."""

    def __init__(self) -> None:
        self.attempts = 0

    def __call__(self, execute, sql, params, many, context):
        self.attempts += 1
        raise OperationalError("connection to server at 127.0.0.1 failed: Connection refused")


@contextlib.contextmanager
def database_down():
    outage = Outage()
    with connection.execute_wrapper(outage):
        yield outage


@pytest.fixture
def expire_at_once(settings):
    """Every serving cache expires on its next use (TTL 0), so each use tries to re-read."""
    for name in (
        "API_KEY_CACHE_SECONDS",
        "SERVING_ACTIVE_VERSION_TTL",
        "SERVING_RULES_TTL",
        "SERVING_CATALOG_TTL",
        "SERVING_POPULARITY_TTL",
        "EXPERIMENTS_CACHE_TTL",
    ):
        setattr(settings, name, 0)
    settings.API_KEY_OUTAGE_GRACE_SECONDS = 300


def test_a_known_key_is_accepted_during_an_outage_within_the_grace(store, api_key, expire_at_once):
    assert auth.check_api_key(api_key).status is auth.KeyStatus.OK
    with database_down() as outage:
        first = auth.check_api_key(api_key)
        second = auth.check_api_key(api_key)
    assert first.status is auth.KeyStatus.OK and first.store.pk == store.pk
    assert second.status is auth.KeyStatus.OK
    assert outage.attempts == 1  # the second check is inside the back-off: no new connection attempt


def test_without_a_grace_or_a_copy_the_key_check_raises(store, api_key, expire_at_once, settings):
    with database_down(), pytest.raises(OperationalError):
        auth.check_api_key(api_key)  # never read by this process: nothing to answer from
    assert auth.check_api_key(api_key).status is auth.KeyStatus.OK
    settings.API_KEY_OUTAGE_GRACE_SECONDS = 0
    with database_down(), pytest.raises(OperationalError):
        auth.check_api_key(api_key)


def test_the_key_is_read_again_once_the_database_is_back(store, api_key, expire_at_once, monkeypatch):
    monkeypatch.setattr(auth, "OUTAGE_RETRY_SECONDS", 0.0)
    assert auth.check_api_key(api_key).status is auth.KeyStatus.OK
    with database_down():
        assert auth.check_api_key(api_key).status is auth.KeyStatus.OK
    prefix = ApiKey.prefix_of(api_key)
    with unscoped():  # revoked by another process: no signal reaches this one
        ApiKey.objects.filter(prefix=prefix).update(revoked_at=timezone.now())
    assert auth.check_api_key(api_key).status is auth.KeyStatus.REVOKED


def test_the_serving_caches_keep_their_last_value(shop, store, expire_at_once):
    state = runtime.serving_state(store)
    snap = snapshot.catalog_snapshot(store.pk)
    store_rules = rules.load_rules(store.pk)
    running = experiments.running_experiments(store.pk)
    active = runtime.active_version_id(store.pk)
    assert active and state.version_id == active
    with database_down() as outage:
        assert snapshot.catalog_snapshot(store.pk) is snap
        assert rules.load_rules(store.pk) is store_rules
        assert experiments.running_experiments(store.pk) is running
        assert runtime.active_version_id(store.pk) == active
        during = runtime.serving_state(store)
        attempts = outage.attempts
        # Inside the back-off nothing tries the database again.
        for _ in range(3):
            runtime.serving_state(store)
            rules.load_rules(store.pk)
            experiments.running_experiments(store.pk)
        assert outage.attempts == attempts
    assert during is state
    assert attempts == 4  # catalog, rules, experiments, active version: one failed read each


def test_popularity_rows_are_kept_when_the_state_is_rebuilt_during_an_outage(shop, store, expire_at_once):
    before = runtime.serving_state(store)
    key = (store.pk, before.version_id)
    rows = runtime._tables[key][1]
    runtime._states.clear()  # the state must be rebuilt; the popularity rows are expired (TTL 0)
    with database_down():
        popularity, trending, _ = runtime._popularity_tables(store.pk, before.version_id, before.snap)
    assert runtime._tables[key][1] is rows
    assert (popularity == before.popularity).all() and (trending == before.trending).all()


def test_what_was_never_cached_raises(store, expire_at_once):
    with database_down():
        for read in (snapshot.catalog_snapshot, rules.load_rules, runtime.active_version_id):
            with pytest.raises(OperationalError):
                read(store.pk)


def test_an_uncached_customer_is_served_without_history(shop, store):
    live_activity.clear()
    before = live_activity.stats()["outage_anonymous"]
    with database_down():
        assert live_activity.serving_customer(store.pk, "C0") is None
    assert live_activity.stats()["outage_anonymous"] == before + 1
    assert live_activity.serving_customer(store.pk, "C0") is not None


def test_the_api_answers_503_json_with_retry_after(shop, store, api_client, expire_at_once):
    from tests.api.helpers import event

    assert api_client.get(f"{API}/popular?n=3").status_code == 200
    with database_down():
        # Served from the caches:
        assert api_client.get(f"{API}/popular?n=3").status_code == 200
        assert api_client.get(f"{API}/products/M0/similar?n=3").status_code == 200
        r = api_client.get(f"{API}/recommendations/customer/C0?n=3")
        assert r.status_code == 200 and len(r.json()["items"]) == 3
        # Needs the database: the retryable JSON answer, never a 500.
        for r in (
            api_client.get(f"{API}/customers/C0"),
            api_client.post(f"{API}/events", event(customer="c-outage", sku="M1"), format="json"),
            api_client.post(f"{API}/events/batch", [event(customer="c-outage", sku="M1")], format="json"),
        ):
            assert r.status_code == 503, r.content
            assert r["Content-Type"].startswith("application/json") and r["Retry-After"]
            assert r.json()["error"]["code"] == "database_unavailable"
    assert api_client.get(f"{API}/customers/C0").status_code == 200


def test_an_unbuffered_log_row_is_kept_when_the_database_is_down(shop, store, settings):
    settings.SERVING_LOG_BUFFER_ROWS = 0  # written on the request
    settings.SERVING_LOG_FLUSH_MS = 3_600_000  # only the explicit flush below writes
    state = runtime.serving_state(store)
    table = responses.LIST_LOG
    deferred = table.deferred
    with database_down():
        list_id = responses.log_list(state, "customer", [], placement="outage")
    assert table.deferred == deferred + 1 and table.pending >= 1
    logbuffer.flush_all()
    with unscoped():
        assert RecommendationList.objects.filter(list_id=list_id, placement="outage").count() == 1


def test_the_rules_are_read_again_after_the_back_off_not_after_another_ttl(store, settings, monkeypatch):
    """After a failed re-read the rules are retried ``OUTAGE_RETRY_SECONDS`` later, not a whole TTL
    later (the mutation run found this untested)."""
    settings.SERVING_RULES_TTL = 60
    clock = {"now": 1000.0}
    # The rules cache lives in rules_snapshot (rules re-exports load_rules).
    monkeypatch.setattr(rules_snapshot.time, "monotonic", lambda: clock["now"])
    cached = rules.load_rules(store.pk)
    clock["now"] += 61  # expired
    with database_down() as outage:
        assert rules.load_rules(store.pk) is cached
        assert outage.attempts == 1
        clock["now"] += rules_snapshot.OUTAGE_RETRY_SECONDS / 2  # inside the back-off: no new attempt
        assert rules.load_rules(store.pk) is cached
        assert outage.attempts == 1
    clock["now"] += rules_snapshot.OUTAGE_RETRY_SECONDS  # the back-off is over and the database is back
    with CaptureQueriesContext(connection) as queries:
        rules.load_rules(store.pk)
    assert len(queries) >= 1  # read again, not served from the cache for another TTL
