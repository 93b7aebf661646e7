"""Redis (cache and broker) unreachable: recommendations are still served from the models in memory
and on disk, and event ingestion still writes to PostgreSQL."""

from __future__ import annotations

import socket
import time

import pytest
from django.test import override_settings

from shop_recs.activity.models import Event
from shop_recs.platform.jobs import JobStatus
from shop_recs.serving import runtime
from shop_recs.serving.fbt import clear_fbt
from shop_recs.stores.scoping import unscoped
from shop_recs.training import artifacts, services
from tests.api.helpers import event
from tests.conftest import require_postgres, require_redis

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]
API = "/api/v1"


def _closed_port() -> int:
    """A local port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _reset_producer_pool(app) -> None:
    """Forget the app's cached broker connections (as Celery does after a fork) so the next publish
    connects to the current broker URL."""
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def dead_redis(settings, monkeypatch):
    """Point the cache and the Celery broker at a closed port for the duration of the test."""
    require_postgres()
    require_redis()
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    caches = {
        "default": {
            **settings.CACHES["default"],
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
        }
    }
    from shop_recs.celery import app

    old = (app.conf.task_always_eager, app.conf.broker_url)
    app.conf.task_always_eager = False
    app.conf.broker_url = url
    # Celery's broker_url prefers the CELERY_BROKER_URL environment variable over its config.
    monkeypatch.setenv("CELERY_BROKER_URL", url)
    _reset_producer_pool(app)
    # override_settings (not the settings fixture) so the live cache is restored before other
    # fixtures' teardown touches it.
    with override_settings(CACHES=caches, CELERY_BROKER_URL=url, CELERY_TASK_ALWAYS_EAGER=False):
        try:
            yield url
        finally:
            app.conf.task_always_eager, app.conf.broker_url = old
            _reset_producer_pool(app)


def test_serving_and_ingestion_without_redis(shop, store, api_client, dead_redis):
    from django.core.cache import cache

    with pytest.raises(Exception):  # noqa: B017, PT011 - the raw cache really is down
        cache.get("probe")

    # Web worker restarted during the outage: nothing in memory, the model comes from disk.
    artifacts.clear_model_cache()
    runtime.invalidate()
    clear_fbt()
    t0 = time.monotonic()
    r = api_client.get(f"{API}/recommendations/customer/C0?n=3")
    assert r.status_code == 200, r.content
    assert r.json()["model_version"] is not None and len(r.json()["items"]) == 3
    assert api_client.get(f"{API}/products/M0/similar?n=3").status_code == 200
    assert api_client.get(f"{API}/popular?n=3").status_code == 200
    # FBT: not in memory, the shared cache is down -> rebuilt in the request, still 200.
    fbt = api_client.get(f"{API}/products/M0/frequently-bought-together?n=3")
    assert fbt.status_code == 200, fbt.content
    assert time.monotonic() - t0 < 20  # short socket timeouts: no request hangs on Redis

    rows = [event(customer=f"c-{i}", type="view", sku="M1") for i in range(5)]
    with unscoped():
        before = Event.objects.filter(store=store).count()
    r = api_client.post(f"{API}/events/batch", rows, format="json")
    assert r.status_code == 201, r.content
    assert r.json() == {"accepted": 5}
    r = api_client.post(f"{API}/events", event(customer="c-single", sku="M2"), format="json")
    assert r.status_code == 201, r.content
    with unscoped():
        assert Event.objects.filter(store=store).count() == before + 6

    # Starting a training run with the broker down: the request succeeds, the run is failed at once
    # (it must not hold the store's training lock forever) and the active model is untouched.
    active = artifacts.load_active_model(store).version.pk
    run = services.start_training(store, ["popularity"])
    run.refresh_from_db()
    assert run.status == JobStatus.FAILED and "task queue" in run.error
    assert artifacts.load_active_model(store).version.pk == active
