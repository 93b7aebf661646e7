"""Prometheus metrics (issue #16): the series a scrape shows after API requests and jobs, serving
cache hits and misses, queue depth from the broker (and "unknown" when it is down), multiprocess
mode across OS processes and under gunicorn, and who may scrape ``/metrics``."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from shop_recs.platform import jobs, metrics
from tests.conftest import ROOT, require_redis

API = "/api/v1"


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """``{(sample name, labels): value}`` of a text exposition."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def scrape(client, **extra) -> dict[tuple[str, frozenset], float]:
    response = client.get("/metrics", **extra)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return samples(response.content.decode())


def value(data: dict, name: str, **labels: str) -> float:
    return data.get((name, frozenset(labels.items())), 0.0)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- what a scrape shows -------------------------------------------------------------------------


@pytest.mark.django_db
def test_api_requests_appear_by_route_and_status_class(client, api_client, settings):
    before = scrape(client)
    for _ in range(3):
        assert api_client.get(f"{API}/popular").status_code == 200
    assert api_client.get(f"{API}/search", {"q": "shirt"}).status_code == 200  # the fast path
    assert client.get(f"{API}/popular").status_code == 401  # no key
    assert api_client.get(f"{API}/no-such-thing").status_code == 404
    after = scrape(client)

    name = "shop_recs_api_request_duration_seconds_count"
    delta = lambda **labels: value(after, name, **labels) - value(before, name, **labels)  # noqa: E731
    assert delta(route="api-popular", method="GET", status="2xx") == 3
    assert delta(route="api-search", method="GET", status="2xx") == 1
    assert delta(route="api-popular", method="GET", status="4xx") == 1
    assert delta(route="-", method="GET", status="4xx") == 1  # unknown paths share one series
    # Histogram buckets: all three /popular answers took at most 10 s.
    bucket = "shop_recs_api_request_duration_seconds_bucket"
    labels = {"route": "api-popular", "method": "GET", "status": "2xx", "le": "10.0"}
    assert value(after, bucket, **labels) - value(before, bucket, **labels) == 3
    # No store label anywhere (bounded cardinality), and the dashboard is not timed.
    assert not any("store" in dict(k[1]) for k in after)


@pytest.mark.django_db
def test_the_api_key_cache_counts_a_miss_then_hits(client, api_client):
    before = scrape(client)
    for _ in range(3):
        api_client.get(f"{API}/popular")
    after = scrape(client)
    name = "shop_recs_serving_cache_lookups_total"
    assert value(after, name, cache="api_key", result="miss") - value(before, name, cache="api_key", result="miss") == 1
    assert value(after, name, cache="api_key", result="hit") - value(before, name, cache="api_key", result="hit") == 2


def test_serving_cache_counters_of_each_cache():
    name = "shop_recs_serving_cache_lookups_total"
    before = samples(metrics.exposition().decode())
    for cache in ("live_activity", "catalog_snapshot", "active_version"):
        metrics.cache_lookup(cache, True)
        metrics.cache_lookup(cache, False)
        metrics.cache_lookup(cache, False)
    after = samples(metrics.exposition().decode())
    for cache in ("live_activity", "catalog_snapshot", "active_version"):
        assert value(after, name, cache=cache, result="hit") - value(before, name, cache=cache, result="hit") == 1
        assert value(after, name, cache=cache, result="miss") - value(before, name, cache=cache, result="miss") == 2


@pytest.mark.django_db
def test_the_active_version_and_catalog_caches_are_counted_where_they_live(store):
    from shop_recs.serving import runtime, snapshot

    name = "shop_recs_serving_cache_lookups_total"
    before = samples(metrics.exposition().decode())
    for _ in range(2):
        runtime.active_version_id(store.pk)
        snapshot.catalog_snapshot(store.pk)
    after = samples(metrics.exposition().decode())
    for cache in ("active_version", "catalog_snapshot"):
        assert value(after, name, cache=cache, result="miss") - value(before, name, cache=cache, result="miss") == 1
        assert value(after, name, cache=cache, result="hit") - value(before, name, cache=cache, result="hit") == 1


@pytest.mark.django_db
def test_jobs_are_timed_and_counted_by_kind_and_outcome(client, store):
    from analytics.models import ProfileRun
    from analytics.services import run_profiles, start_profile_run

    before = scrape(client)
    # A real job through its task body: claim, stages, succeed.
    run = run_profiles(start_profile_run(store, enqueue=False).pk)
    assert run.status == jobs.JobStatus.SUCCEEDED
    # Failed after a claim, and a stale row failed by the sweep.
    failing = ProfileRun.objects.create(store=store)
    assert jobs.claim(failing)
    jobs.fail(failing, "boom")
    stale = ProfileRun.objects.create(store=store)
    assert jobs.claim(stale)
    ProfileRun.all_stores.filter(pk=stale.pk).update(heartbeat_at=timezone.now() - timedelta(days=2))
    assert jobs.fail_stale_jobs(store, models=[ProfileRun]) == 1
    after = scrape(client)

    kind = "analytics.profilerun"
    count = "shop_recs_jobs_finished_total"
    for outcome in ("succeeded", "failed", "stale"):
        assert value(after, count, kind=kind, outcome=outcome) - value(before, count, kind=kind, outcome=outcome) == 1
    hist = "shop_recs_job_duration_seconds_count"
    for outcome in ("succeeded", "failed"):
        assert value(after, hist, kind=kind, outcome=outcome) - value(before, hist, kind=kind, outcome=outcome) == 1
    # The sweep knows no claim-to-end time of its own: counted, not timed.
    assert value(after, hist, kind=kind, outcome="stale") == value(before, hist, kind=kind, outcome="stale")
    assert value(after, "shop_recs_job_duration_seconds_sum", kind=kind, outcome="succeeded") >= 0


@pytest.mark.django_db
def test_a_job_that_cannot_be_enqueued_is_counted(client, store, settings, monkeypatch):
    from analytics.models import ProfileRun

    row = ProfileRun.objects.create(store=store)

    class NoBroker:
        class app:  # noqa: N801 - mimics a Celery task's attribute
            class conf:  # noqa: N801
                task_always_eager = False

        def delay(self, pk):
            raise ConnectionError("broker down")

    before = scrape(client)
    jobs._enqueue_or_fail(NoBroker(), ProfileRun, row.pk)
    after = scrape(client)
    name = "shop_recs_jobs_finished_total"
    labels = {"kind": "analytics.profilerun", "outcome": "not_enqueued"}
    assert value(after, name, **labels) - value(before, name, **labels) == 1


# --- queue depth -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_queue_depth_is_read_from_the_redis_broker(client, settings):
    url = require_redis()
    import redis

    queue = f"metrics-test-{uuid.uuid4().hex[:8]}"
    r = redis.Redis.from_url(url)
    try:
        r.lpush(queue, "a", "b", "c")
        r.lpush(queue + "\x06\x166", "d")  # a priority-6 task of the same queue
        settings.CELERY_BROKER_URL = url
        settings.METRICS_CELERY_QUEUES = [queue, f"{queue}-empty"]
        data = scrape(client)
    finally:
        r.delete(queue, queue + "\x06\x166")
    assert value(data, "shop_recs_celery_broker_up") == 1
    assert value(data, "shop_recs_celery_queue_length", queue=queue) == 4
    assert ("shop_recs_celery_queue_length", frozenset({("queue", f"{queue}-empty")})) in data
    assert ("shop_recs_celery_unacked", frozenset()) in data


@pytest.mark.django_db
def test_a_down_broker_is_reported_unknown_and_the_scrape_still_works(client, settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{_closed_port()}/0"
    t0 = time.monotonic()
    data = scrape(client)
    assert time.monotonic() - t0 < 5  # METRICS_BROKER_TIMEOUT_MS bounds the broker read (generous bound)
    assert value(data, "shop_recs_celery_broker_up") == 0
    assert not [k for k in data if k[0] == "shop_recs_celery_queue_length"]  # unknown, not 0


@pytest.mark.django_db
def test_embedded_mode_exports_no_queue_series(client, settings):
    settings.CELERY_BROKER_URL = ""
    data = scrape(client)
    assert not [k for k in data if k[0].startswith("shop_recs_celery_")]


# --- access control ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_only_allowed_addresses_or_the_token_may_scrape(client, settings):
    assert client.get("/metrics").status_code == 200  # the test client's 127.0.0.1
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 403
    # Through a proxy on the same host, every public request comes from 127.0.0.1: not trusted.
    assert client.get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 403
    assert client.get("/metrics", HTTP_X_REAL_IP="203.0.113.9").status_code == 403

    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8"]
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics").status_code == 403

    settings.METRICS_ALLOWED_IPS = []
    settings.METRICS_TOKEN = "s3cret-token"
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 403
    bad = client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer wrong")
    assert bad.status_code == 403
    ok = client.get(
        "/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer s3cret-token", HTTP_X_FORWARDED_FOR="x"
    )
    assert ok.status_code == 200
    assert b"shop_recs_api_request_duration_seconds" in ok.content
    assert client.post("/metrics").status_code in (403, 405)


@pytest.mark.django_db
def test_metrics_off_means_404_and_no_middleware(client, api_client, settings):
    settings.METRICS_ENABLED = False
    assert client.get("/metrics").status_code == 404
    before = samples(metrics.exposition().decode())
    assert api_client.get(f"{API}/popular").status_code == 200
    after = samples(metrics.exposition().decode())
    assert {k: v for k, v in after.items() if "api_request" in k[0]} == {
        k: v for k, v in before.items() if "api_request" in k[0]
    }


def test_a_malformed_allowed_address_stops_start_up():
    code = "import django; django.setup()"
    env = {**os.environ, "METRICS_ALLOWED_IPS": "127.0.0.1,not-an-ip", "DEBUG": "1"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode != 0
    assert "METRICS_ALLOWED_IPS: 'not-an-ip' is not an IP address or network" in out.stderr


# --- multiprocess mode -------------------------------------------------------------------------------

_RECORD = textwrap.dedent(
    """
    import sys
    import django
    django.setup()
    from shop_recs.platform import metrics
    n = int(sys.argv[1])
    for _ in range(n):
        metrics.observe_api("api-popular", "GET", 200, 0.002)
        metrics.cache_lookup("live_activity", True)
    metrics.job_finished("training.trainingrun", "succeeded", 30.0 * n)
    """
)
_SCRAPE = "import django; django.setup(); from shop_recs.platform import metrics; print(metrics.exposition().decode())"


def _child_env(directory: Path) -> dict[str, str]:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory), "DJANGO_SETTINGS_MODULE": "shop_recs.settings"}
    env.setdefault("SECRET_KEY", "metrics-test")
    env["CELERY_BROKER_URL"] = ""  # no queue read in these children
    env["REDIS_URL"] = ""
    return env


def test_multiprocess_mode_adds_up_the_processes(tmp_path):
    env = _child_env(tmp_path)
    for n in ("3", "5"):  # two worker processes, one after the other (each its own pid and files)
        subprocess.run([sys.executable, "-c", _RECORD, n], cwd=ROOT, env=env, check=True)
    assert len(list(tmp_path.glob("histogram_*.db"))) == 2
    out = subprocess.run([sys.executable, "-c", _SCRAPE], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    data = samples(out.stdout)
    labels = {"route": "api-popular", "method": "GET", "status": "2xx"}
    assert value(data, "shop_recs_api_request_duration_seconds_count", **labels) == 8
    assert value(data, "shop_recs_api_request_duration_seconds_bucket", le="0.0025", **labels) == 8
    assert value(data, "shop_recs_serving_cache_lookups_total", cache="live_activity", result="hit") == 8
    job = {"kind": "training.trainingrun", "outcome": "succeeded"}
    assert value(data, "shop_recs_job_duration_seconds_count", **job) == 2
    assert value(data, "shop_recs_job_duration_seconds_sum", **job) == 240.0
    assert value(data, "shop_recs_jobs_finished_total", **job) == 2


_WORKER = textwrap.dedent(
    """
    import sys, urllib.request
    import django
    django.setup()
    from celery.signals import worker_init
    from shop_recs.platform import metrics
    worker_init.send(sender=None)  # what a Celery worker's main process sends before its pool starts
    metrics.job_finished("training.trainingrun", "failed", 12.0)  # as a pool child would, in the same dir
    print(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=10).read().decode())
    """
)


def test_a_celery_worker_serves_its_jobs_on_its_own_port(tmp_path):
    stale = tmp_path / "histogram_999999.db"
    stale.write_bytes(b"\0" * 16)
    port = _closed_port()
    env = {**_child_env(tmp_path), "METRICS_WORKER_PORT": str(port)}
    out = subprocess.run(
        [sys.executable, "-c", _WORKER, str(port)], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    assert not stale.exists()  # emptied at worker start
    data = samples(out.stdout)
    job = {"kind": "training.trainingrun", "outcome": "failed"}
    assert value(data, "shop_recs_jobs_finished_total", **job) == 1
    assert value(data, "shop_recs_job_duration_seconds_sum", **job) == 12.0


def _get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_gunicorn_with_two_workers_scrapes_every_worker(tmp_path):
    """The repository's gunicorn.conf.py: the directory is emptied at start (a stale file of a dead
    server is gone), and a scrape answered by one worker counts the requests of both."""
    directory = tmp_path / "prom"
    directory.mkdir()
    stale = directory / "counter_999999.db"
    stale.write_bytes(b"\0" * 16)
    port = _closed_port()
    env = {**_child_env(directory), "DEBUG": "0", "SECRET_KEY": "metrics-test", "LOG_LEVEL": "WARNING"}
    env["ALLOWED_HOSTS"] = "127.0.0.1"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "shop_recs.wsgi", "-w", "2", "-b", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if _get(port, "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(f"gunicorn did not start: {proc.stdout.read().decode()[-3000:] if proc.poll() else ''}")
            time.sleep(0.2)
        assert not stale.exists()
        # Requests until both workers have served some (each writes its own files); no key, so no
        # database is needed (401).
        sent = 0
        while len(list(directory.glob("histogram_*.db"))) < 2 and sent < 400:
            for _ in range(10):
                assert _get(port, f"{API}/popular")[0] == 401
            sent += 10
        assert len(list(directory.glob("histogram_*.db"))) == 2, "one worker served every request"
        status, body = _get(port, "/metrics")
        assert status == 200
        data = samples(body.decode())
        labels = {"route": "api-popular", "method": "GET", "status": "4xx"}
        assert value(data, "shop_recs_api_request_duration_seconds_count", **labels) == sent
    finally:
        proc.terminate()
        proc.wait(timeout=30)
