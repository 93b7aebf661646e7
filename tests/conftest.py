"""Shared fixtures: small factories for stores, users, API keys, products and customers.

Service-backed tests call ``require_postgres()`` / ``require_redis()``: without the service they skip
with a reason on a developer's machine, and fail when ``CI=true`` (a green CI that skipped the real
path would prove nothing).
"""

from __future__ import annotations

import contextlib
import os
import socket
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.db import connection

from shop_recs.stores.models import ApiKey, Membership, Role, Store
from shop_recs.stores.scoping import unscoped

ROOT = Path(__file__).resolve().parent.parent
UCI_FILE = ROOT.parent / "shared" / "data" / "online_retail.csv.gz"


def in_ci() -> bool:
    """``CI=true`` (read at each call: ``.ci/run`` sets it, and a test may change it)."""
    return os.environ.get("CI", "").lower() == "true"


def skip_or_fail(reason: str) -> None:
    if in_ci():
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def require_postgres() -> None:
    if connection.vendor != "postgresql":
        skip_or_fail("this test needs PostgreSQL (set DATABASE_URL=postgres://...)")


def require_redis() -> str:
    """``REDIS_URL``, once the Redis it names answers a TCP connect (skip, or fail under CI)."""
    url = os.environ.get("REDIS_URL", "")
    if not url:
        skip_or_fail("this test needs Redis (set REDIS_URL=redis://...)")
    parsed = urlsplit(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 6379
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        skip_or_fail(f"Redis is not reachable at {host}:{port} (REDIS_URL)")
    return url


@contextlib.contextmanager
def publishing_to(queue: str, broker: str):
    """Send this process's Celery tasks to ``queue`` on ``broker``: a real worker's private queue
    (the worker fixtures of tests/services and tests/faults share it). Heavy and default tasks
    (``shop_recs.celery.TASK_QUEUES``) both go there, so one worker with ``-Q queue`` runs them all;
    such a worker gets ``CELERY_QUEUE=queue`` and ``CELERY_HEAVY_QUEUE=queue`` for the tasks it sends."""
    from shop_recs.celery import app

    old = (app.conf.task_always_eager, app.conf.broker_url, app.conf.task_default_queue, app.conf.get("heavy_queue"))
    app.conf.task_always_eager, app.conf.broker_url, app.conf.task_default_queue = False, broker, queue
    app.conf.heavy_queue = queue
    try:
        yield
    finally:
        app.conf.task_always_eager, app.conf.broker_url, app.conf.task_default_queue, app.conf.heavy_queue = old


def require_uci_file() -> Path:
    if not UCI_FILE.exists():
        skip_or_fail(f"the UCI Online Retail file is absent ({UCI_FILE})")
    return UCI_FILE


@pytest.fixture(autouse=True)
def _eager_celery(settings):
    """Tests run Celery tasks in-process unless a test explicitly asks for a real worker."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    from shop_recs.celery import app

    app.conf.task_always_eager = True


@pytest.fixture(autouse=True)
def _no_wrong_key_throttle(settings):
    """Many tests send wrong keys on purpose from the same test-client address; counted in a shared
    cache, they would turn later tests' 401s into 429s. tests/api/test_wrong_key_throttle.py turns
    the throttle back on for itself."""
    settings.API_KEY_FAILURE_LIMIT = 0


@pytest.fixture(autouse=True)
def _no_rate_limits(settings):
    """The per-key and per-address rate limits (shop_recs.api.ratelimit) count every API request of
    the test client's one address in a shared cache; off unless a test turns them on
    (tests/api/test_rate_limits.py), whatever the environment says."""
    from shop_recs.api import ratelimit

    settings.API_RATE_LIMIT_PER_KEY = 0
    settings.API_RATE_LIMIT_PER_IP = 0
    ratelimit.reset()


@pytest.fixture(autouse=True)
def _overview_always_fresh(settings):
    """Tests that load the Overview, write events and load it again expect the new figures; a deployment
    serves a snapshot up to a few minutes old instead (tests/dashboard/test_overview_snapshots.py)."""
    settings.OVERVIEW_MAX_STALENESS_SECONDS = 0


@pytest.fixture(autouse=True)
def _no_leaked_store_scope():
    """A test must leave no store scope behind: django-scopes keeps it in a context variable, and a
    scope left open by one test (an API view that raised past ``finalize_response``) made a later
    test's unscoped query quietly succeed instead of raising ``ScopeError``. The scope is reset
    either way so one leak cannot cascade, and the leaking test fails at teardown."""
    from django_scopes.state import state

    token = state.set(None)
    yield
    leaked = state.get()
    state.reset(token)
    if leaked:
        pytest.fail(f"this test left a store scope open: {leaked}", pytrace=False)


@pytest.fixture(autouse=True)
def _default_language():
    """Every test starts in the default language: a request through the test client with a zh-Hans
    cookie leaves that language active in the thread, which leaked into later tests on the same
    worker (those that build English texts outside a request)."""
    from django.utils import translation

    translation.deactivate()
    yield
    translation.deactivate()


def clear_test_caches() -> None:
    """Empty every in-process cache (API keys, models, serving state, search indexes, campaigns, ...)
    and the Django cache when it is local memory.

    The one registry (``shop_recs.platform.cache.invalidate_process_caches``) knows every cache of
    the modules imported so far; a module not imported yet has nothing cached. The Django cache is
    emptied only when it lives in this process: on Redis, ``clear()`` is a FLUSHDB of the database
    the Celery broker shares, which deleted tasks another xdist worker had just queued for its real
    worker (a fault test then waited forever). Store ids are never reused on PostgreSQL, so nothing
    cached under an old id can reach a later test there.
    """
    from django.core.cache import caches
    from django.core.cache.backends.locmem import LocMemCache

    from shop_recs.platform.cache import invalidate_process_caches

    invalidate_process_caches()
    if isinstance(caches["default"], LocMemCache):
        caches["default"].clear()


@pytest.fixture(autouse=True)
def _fresh_process_caches():
    """Every test starts with empty caches (:func:`clear_test_caches`): store and key ids are reused
    across tests on SQLite."""
    from shop_recs.platform import logbuffer

    clear_test_caches()
    yield
    clear_test_caches()
    # A test that buffered log rows: write them and close the flusher thread's connection (the test
    # database cannot be dropped while it is open).
    logbuffer.stop_flusher()


@pytest.fixture
def make_store(db):
    counter = {"n": 0}

    def _make(name: str | None = None, **kwargs) -> Store:
        counter["n"] += 1
        name = name or f"Store {counter['n']}"
        slug = kwargs.pop("slug", name.lower().replace(" ", "-"))
        return Store.objects.create(name=name, slug=slug, **kwargs)

    return _make


@pytest.fixture
def store(make_store) -> Store:
    return make_store("Alpha Shop", slug="alpha")


@pytest.fixture
def other_store(make_store) -> Store:
    return make_store("Beta Shop", slug="beta")


@pytest.fixture
def make_user(db, django_user_model):
    def _make(username: str, store: Store | None = None, role: str = Role.MERCHANT, **kwargs):
        user = django_user_model.objects.create_user(username=username, password="pw-123456!", **kwargs)
        if store is not None:
            Membership.objects.create(user=user, store=store, role=role)
        return user

    return _make


@pytest.fixture
def merchant(make_user, store):
    return make_user("merchant", store, Role.MERCHANT)


@pytest.fixture
def analyst(make_user, store):
    return make_user("analyst", store, Role.ANALYST)


@pytest.fixture
def api_key(store) -> str:
    _, raw = ApiKey.generate(store, "test key")
    return raw


@pytest.fixture
def api_client(api_key):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    return client


@pytest.fixture
def other_api_client(other_store):
    from rest_framework.test import APIClient

    _, raw = ApiKey.generate(other_store, "other key")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture
def make_product(db):
    def _make(store: Store, sku: str, **kwargs):
        from shop_recs.catalog.models import Product

        kwargs.setdefault("title", f"Product {sku}")
        kwargs.setdefault("price", Decimal("9.99"))
        with unscoped():
            return Product.objects.create(store=store, sku=sku, **kwargs)

    return _make


@pytest.fixture
def make_customer(db):
    def _make(store: Store, external_id: str, **kwargs):
        from shop_recs.activity.models import Customer

        with unscoped():
            return Customer.objects.create(store=store, external_id=external_id, **kwargs)

    return _make


@pytest.fixture
def live_cache(settings):
    """The per-process activity cache on, subscribed to the real Redis, its subscription healthy
    (PostgreSQL and Redis required: they fail under CI=true when absent)."""
    import time  # why: only this fixture waits

    from shop_recs.activity import changes  # why: the app registry is ready only inside a test
    from shop_recs.serving import live_activity  # why: as above

    require_postgres()
    settings.REDIS_URL = require_redis()
    settings.SERVING_ACTIVITY_CACHE = True
    live_activity._feed.__init__()
    changes._client = None
    deadline = time.monotonic() + 5
    while not live_activity._feed.healthy():
        assert time.monotonic() < deadline, "the activity subscription never became healthy"
        time.sleep(0.05)
    yield live_activity
    live_activity._feed._lost(RuntimeError("test over"))
    changes._client = None
