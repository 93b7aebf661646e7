"""PostgreSQL stopped under load: serving keeps answering from each process's caches, events answer
a JSON 503 with Retry-After (never an HTML 500), and every acknowledged event is stored exactly once.

The test starts its own PostgreSQL (``private_postgres``: a temporary cluster on a free port, never
the shared server), prepares a store in it with ``manage.py`` (migrate, then a seed script: catalog,
events, a trained model, an API key), runs a real gunicorn against it, warms the caches, and then
sends recommendations, similar, search, popular and event requests from a few threads while it stops
the server for a while and starts it again. Responses are counted by endpoint, phase and status.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.faults.conftest import Gunicorn, PrivatePostgres, manage, server_env

pytestmark = [pytest.mark.services]

DB_NAME = "shop_recs_outage"
#: How long the database stays down: longer than every serving cache's TTL the server is given below,
#: so each of them expires (and fails to re-read) during the outage.
OUTAGE_SECONDS = 8.0
#: Short TTLs so the outage outlasts every cache: a test of the fallback, not of a lucky TTL.
SHORT_TTLS = {
    "API_KEY_CACHE_SECONDS": "1",
    "SERVING_ACTIVE_VERSION_TTL": "1",
    "SERVING_RULES_TTL": "1",
    "SERVING_CATALOG_TTL": "1",
    "SERVING_POPULARITY_TTL": "1",
    "EXPERIMENTS_CACHE_TTL": "1",
    "API_KEY_OUTAGE_GRACE_SECONDS": "300",
}
#: Answered from the process's caches during the outage: always 200.
SERVING = ("recommendations", "similar", "popular", "search")

SEED = r"""
import json
from datetime import timedelta

from django.utils import timezone

from shop_recs.activity.services import ingest_events
from shop_recs.catalog.models import Category, Product
from shop_recs.stores.models import ApiKey, Store
from shop_recs.stores.scoping import unscoped
from shop_recs.training.services import train_store

store = Store.objects.create(name="Outage Shop", slug="outage")
_, raw = ApiKey.generate(store, "outage test")
with unscoped():
    mugs = Category.objects.create(store=store, name="Mugs", path="Kitchen > Mugs")
    shirts = Category.objects.create(store=store, name="Shirts", path="Clothes > Shirts")
    for i in range(4):
        Product.objects.create(store=store, sku=f"M{i}", title=f"Ceramic coffee mug {i}", category=mugs, price=10 + i)
        Product.objects.create(store=store, sku=f"S{i}", title=f"Cotton shirt {i}", category=shirts, price=20 + i)
now = timezone.now() - timedelta(days=1)
rows = []
for c in range(12):
    group = ["M0", "M1", "M2", "M3"] if c % 2 == 0 else ["S0", "S1", "S2", "S3"]
    for step, sku in enumerate(group[c % 4 :] + group[: c % 4]):
        row = {"customer": f"C{c}", "type": "view", "sku": sku,
               "timestamp": (now + timedelta(hours=c, minutes=step)).isoformat()}
        if step == 0:
            row.update(type="purchase", order_id=f"o{c}")
        rows.append(row)
ingest_events(store, rows)
train_store(store, algorithms=["item_knn"])
print("SEED:" + json.dumps({"key": raw}))
"""


@dataclass
class Tally:
    """Responses by (endpoint, phase) -> status, and what the event requests left behind."""

    counts: Counter = field(default_factory=Counter)
    bad_shapes: list[str] = field(default_factory=list)
    acked: dict[str, list[str]] = field(default_factory=dict)  # idempotency key -> customers written
    unacked: dict[str, tuple[str, bytes, list[str]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def of(self, endpoint: str, phase: str) -> Counter:
        return Counter({s: n for (e, p, s), n in self.counts.items() if e == endpoint and p == phase})


class Phase:
    """``before`` -> ``outage`` (the server is stopped) -> ``after`` (it accepts connections again)."""

    def __init__(self) -> None:
        self.value = "before"
        self.changes = 0


def _env(server: PrivatePostgres) -> dict[str, str]:
    return server_env(server, DB_NAME, **SHORT_TTLS)


@pytest.fixture
def outage_server(private_postgres: PrivatePostgres, tmp_path: Path):
    """(base URL, API key, the private server) for a gunicorn serving a seeded store from it."""
    with private_postgres.connect() as conn:
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    env = _env(private_postgres)
    env["SHOP_RECS_VAR_DIR"] = str(tmp_path / "var")
    manage(env, "migrate", "--no-input", "-v", "0")
    out = manage(env, "shell", "-c", SEED)
    key = json.loads(out.split("SEED:", 1)[1].strip().splitlines()[0])["key"]
    log = tmp_path / "gunicorn.log"
    # One worker process with threads: every request sees the same per-process caches, so "warmed"
    # means warmed for every request (with several processes, each holds its own copy).
    server = Gunicorn(
        env, log, "-w", "1", "-k", "gthread", "--threads", "4", "--timeout", "60", "--graceful-timeout", "10"
    )
    try:
        server.start(ready_path="/api/v1/popular")
        yield f"{server.base}/api/v1", key, private_postgres, log
    finally:
        server.stop()


def _requests_for(n: int) -> list[tuple[str, str, str]]:
    """(endpoint, method, path) of the n-th round of a load thread."""
    c, m = n % 12, n % 4
    return [
        ("recommendations", "GET", f"/recommendations/customer/C{c}?n=3"),
        ("similar", "GET", f"/products/M{m}/similar?n=3"),
        ("search", "GET", "/search?q=mug&n=3"),
        ("popular", "GET", "/popular?n=3"),
        ("events", "POST", "/events"),
        ("events_batch", "POST", "/events/batch"),
    ]


def _event_body(endpoint: str, tag: str) -> tuple[bytes, list[str]]:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if endpoint == "events":
        return json.dumps({"customer": tag, "type": "view", "sku": "M1", "timestamp": stamp}).encode(), [tag]
    customers = [f"{tag}-{i}" for i in range(3)]
    rows = [{"customer": c, "type": "view", "sku": "S1", "timestamp": stamp} for c in customers]
    return json.dumps(rows).encode(), customers


def _send(session: requests.Session, base: str, key: str, method: str, path: str, **kw) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}", **kw.pop("headers", {})}
    return session.request(method, base + path, headers=headers, timeout=30, **kw)


def _load(base: str, key: str, phase: Phase, tally: Tally, stop: threading.Event, worker: int) -> None:
    session = requests.Session()
    n = 0
    while not stop.is_set():
        for endpoint, method, path in _requests_for(n + worker):
            started, changes = phase.value, phase.changes
            kw: dict = {}
            idem, customers = "", []
            if method == "POST":
                idem = f"outage-{worker}-{n}-{endpoint}"
                body, customers = _event_body(endpoint, f"ev-{worker}-{n}-{endpoint}")
                kw = {"data": body, "headers": {"Content-Type": "application/json", "Idempotency-Key": idem}}
            try:
                r = _send(session, base, key, method, path, **kw)
                status, ctype, retry = r.status_code, r.headers.get("Content-Type", ""), r.headers.get("Retry-After")
                text = r.text
            except requests.RequestException as exc:
                status, ctype, retry, text = -1, "", None, repr(exc)
            # A request counts for a phase only if the phase did not change while it ran.
            label = started if phase.changes == changes else "transition"
            with tally.lock:
                tally.counts[(endpoint, label, status)] += 1
                if status >= 400 and (not ctype.startswith("application/json") or status == 500):
                    tally.bad_shapes.append(f"{endpoint} {status} {ctype}: {text[:200]}")
                if status == 503 and (retry is None or json.loads(text)["error"]["code"] != "database_unavailable"):
                    tally.bad_shapes.append(f"{endpoint} 503 without Retry-After/code: {retry} {text[:200]}")
                if method == "POST":
                    if status == 201:
                        tally.acked[idem] = customers
                    else:
                        tally.unacked[idem] = (path, kw["data"], customers)
        n += 1


def _wait(predicate, timeout: float, what: str, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"{what} not within {timeout}s; gunicorn log:\n{log.read_text(errors='replace')[-6000:]}")


def _load_through_an_outage(base: str, key: str, server: PrivatePostgres, log: Path) -> Tally:
    """Load from 3 threads; stop the server for ``OUTAGE_SECONDS``, start it, wait for recovery."""
    phase, tally, stop = Phase(), Tally(), threading.Event()
    threads = [threading.Thread(target=_load, args=(base, key, phase, tally, stop, w)) for w in range(3)]
    for t in threads:
        t.start()
    try:
        _wait(lambda: sum(tally.counts.values()) >= 30, 60, "load before the outage", log)
        # A request counts for "outage" only if it started after the server was down and ended
        # before the restart began (the "stopping"/"restarting" windows count for neither side).
        phase.value = "stopping"
        phase.changes += 1
        server.stop()
        phase.value = "outage"
        phase.changes += 1
        outage_ends = time.monotonic() + OUTAGE_SECONDS
        _wait(lambda: time.monotonic() >= outage_ends, OUTAGE_SECONDS + 5, "the outage", log)
        phase.value = "restarting"
        phase.changes += 1
        server.start()
        phase.value = "after"
        phase.changes += 1
        # Until every endpoint has answered 201/200 again after the restart.
        _wait(
            lambda: all(
                tally.of(e, "after").get(s, 0) >= 3
                for e, s in [*((e, 200) for e in SERVING), ("events", 201), ("events_batch", 201)]
            ),
            60,
            "recovery after the restart",
            log,
        )
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    return tally


def test_serving_survives_a_postgres_outage(outage_server):
    base, key, server, log = outage_server
    session = requests.Session()
    # Warm every cache the serving endpoints use (key, active version, catalog, rules, popularity,
    # the customers' activity, the search index).
    for n in range(12):
        for endpoint, method, path in _requests_for(n):
            if method == "GET":
                r = _send(session, base, key, method, path)
                assert r.status_code == 200, (endpoint, r.status_code, r.text[:500])

    tally = _load_through_an_outage(base, key, server, log)

    phases = ("before", "stopping", "outage", "restarting", "after", "transition")
    endpoints = (*SERVING, "events", "events_batch")
    summary = {e: {p: dict(tally.of(e, p)) for p in phases if tally.of(e, p)} for e in endpoints}
    print("outage tally:", json.dumps(summary, indent=1))
    assert not tally.bad_shapes, tally.bad_shapes[:10]
    for endpoint in SERVING:
        during = tally.of(endpoint, "outage")
        assert during and set(during) == {200}, (endpoint, summary, log.read_text(errors="replace")[-4000:])
    for endpoint in ("events", "events_batch"):
        during = tally.of(endpoint, "outage")
        assert during and set(during) == {503}, (endpoint, summary)

    expected, stored = _retry_and_count(base, key, server, tally)
    print(f"events acknowledged: {sum(expected.values())}, stored: {sum(stored.values())}")
    assert stored == expected  # every acknowledged event once, nothing unacknowledged left over


def _retry_and_count(base: str, key: str, server: PrivatePostgres, tally: Tally) -> tuple[Counter, Counter]:
    """Retry what was not acknowledged, as a client does (same Idempotency-Key and body); then the
    customers of every acknowledged event, and of every stored one (each event has its own customer)."""
    session = requests.Session()
    for idem, (path, body, customers) in tally.unacked.items():
        if idem in tally.acked:
            continue
        r = _send(
            session,
            base,
            key,
            "POST",
            path,
            data=body,
            headers={"Content-Type": "application/json", "Idempotency-Key": idem},
        )
        assert r.status_code == 201, (path, r.status_code, r.text[:300])
        tally.acked[idem] = customers

    expected = Counter(c for customers in tally.acked.values() for c in customers)
    with server.connect(DB_NAME) as conn:
        stored = Counter(
            dict(
                conn.execute(
                    "SELECT c.external_id, count(*) FROM activity_event e JOIN activity_customer c"
                    " ON c.id = e.customer_id WHERE c.external_id LIKE 'ev-%' GROUP BY c.external_id"
                ).fetchall()
            )
        )
    return expected, stored
