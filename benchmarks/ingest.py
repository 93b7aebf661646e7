"""Event ingestion throughput into PostgreSQL: batch API over HTTP vs importer vs raw COPY.

    .venv/bin/python benchmarks/ingest.py [--rows 200000] [--batch 10000] [--clients 2] [--workers 2]

What it does, in one run, against a dedicated database it (re)creates (``shop_recs_bench``):

1. ``migrate``; one store, one API key, 1,000 products; N random events over 20,000 customers.
2. (a) **API**: starts gunicorn (``DEBUG=0``, a random ``SECRET_KEY``) on a free localhost port and
   POSTs the events as JSON batches of ``--batch`` rows to ``/api/v1/events/batch`` from
   ``--clients`` threads (``http.client``); bodies are encoded before the clock starts.
   Customers are new to the store at that point, so this includes creating them.
3. (b) **Importer**: writes the same events to a CSV and runs ``manage.py import_events`` (wall
   time of the subprocess, Django start-up included) and, in process, the importer function
   ``import_events`` and a minimal ``csv.reader -> write_events`` loop.
4. (c) **Raw COPY**: a psycopg 3 ``COPY activity_event ... FROM STDIN`` of the same, already
   resolved rows, binary (what ``write_events`` uses; the physical floor) and text.

``activity_event`` is truncated before each measurement so index sizes are comparable.
Prints a table of rows/s and ratios. It is a script, not a test: nothing asserts on timings.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import os
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
TYPES = ["view"] * 6 + ["click"] * 2 + ["add_to_cart", "purchase", "search", "rating"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def recreate_database(server_url: str, name: str) -> None:
    with psycopg.connect(f"{server_url}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def make_events(n: int, n_products: int, n_customers: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    rows = []
    for i in range(n):
        etype = rng.choice(TYPES)
        row: dict = {
            "customer": f"cust-{rng.randrange(n_customers)}",
            "type": etype,
            "sku": f"SKU-{rng.randrange(n_products)}",
            "timestamp": (start + timedelta(seconds=i * 7)).isoformat().replace("+00:00", "Z"),
        }
        if etype == "search":
            row["sku"] = None
            row["query"] = rng.choice(["blue mug", "teapot", "candle", "vase"])
        elif etype == "purchase":
            row.update(order_id=f"o-{i}", value=round(rng.uniform(1, 80), 2), quantity=rng.randint(1, 3))
        elif etype == "rating":
            row["value"] = rng.randint(1, 5)
        elif etype == "click":
            row["context"] = {"list_id": "home", "placement": "top"}
        rows.append(row)
    return rows


def post_batches(port: int, key: str, bodies: list[bytes], clients: int) -> float:
    queue = list(enumerate(bodies))
    lock = threading.Lock()
    failures: list[str] = []

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        while True:
            with lock:
                if not queue:
                    break
                _, body = queue.pop()
            conn.request(
                "POST",
                "/api/v1/events/batch",
                body=body,
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            )
            resp = conn.getresponse()
            payload = resp.read()
            if resp.status != 201:
                failures.append(f"{resp.status} {payload[:300]!r}")
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if failures:
        raise SystemExit(f"API batches failed: {failures[:3]}")
    return elapsed


def wait_for(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit("gunicorn exited early")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=2, help="concurrent HTTP clients")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--db", default="shop_recs_bench")
    args = parser.parse_args()

    db_url = f"{args.server}/{args.db}"
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(40),
        "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "LOG_LEVEL": "WARNING",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
    }
    # Other jobs on the machine skew every figure; print the load so a reader can judge.
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")
    print(f"database {db_url}: recreate + migrate", flush=True)
    recreate_database(args.server, args.db)
    subprocess.run([PY, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)

    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop_recs.settings")
    import django

    django.setup()
    from django.db import connection, transaction

    from shop_recs.activity.ingest import EVENT_COLUMNS, ensure_customers, product_ids_by_sku, write_events
    from shop_recs.catalog.services import upsert_products
    from shop_recs.stores.models import ApiKey, Store

    n_products, n_customers = 1_000, 20_000
    store = Store.objects.create(name="Bench", slug="bench")
    _, raw_key = ApiKey.generate(store, "bench")
    upsert_products(store, [{"sku": f"SKU-{i}", "title": f"Product {i}", "price": 10} for i in range(n_products)])
    events = make_events(args.rows, n_products, n_customers)
    bodies = [json.dumps(events[i : i + args.batch]).encode() for i in range(0, len(events), args.batch)]
    print(f"{len(events):,} events, {len(bodies)} batches of {args.batch:,}, ~{len(bodies[0]) / 1e6:.1f} MB each")

    def truncate() -> None:
        with connection.cursor() as cur:
            cur.execute("TRUNCATE activity_event")

    results: list[tuple[str, float]] = []

    # (a) the batch API over HTTP
    port = free_port()
    gunicorn = subprocess.Popen(
        [
            str(Path(PY).parent / "gunicorn"),
            "shop_recs.wsgi",
            "-w",
            str(args.workers),
            "-b",
            f"127.0.0.1:{port}",
            "--timeout",
            "300",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        wait_for(port, gunicorn)
        post_batches(port, raw_key, bodies[:1], 1)  # warm-up: imports, connections, customer creation
        truncate()
        elapsed = post_batches(port, raw_key, bodies, args.clients)
        results.append((f"(a) API POST /events/batch ({args.clients} clients, {args.workers} workers)", elapsed))
    finally:
        gunicorn.terminate()
        gunicorn.wait(timeout=30)

    # (a') the same batches through the full Django/DRF stack in this process, one thread, no HTTP:
    # separates the code's own cost from gunicorn/HTTP and from sharing two cores.
    from django.test import Client

    client = Client()
    client.post(  # warm-up: the first request in a process pays for URL resolution and imports
        "/api/v1/events/batch", bodies[0], content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {raw_key}"
    )
    truncate()
    t0 = time.perf_counter()
    for body in bodies:
        resp = client.post(
            "/api/v1/events/batch", body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {raw_key}"
        )
        if resp.status_code != 201:
            raise SystemExit(f"in-process batch failed: {resp.status_code} {resp.content[:300]!r}")
    results.append(("(a') same batches in process via Django test client, 1 thread", time.perf_counter() - t0))

    # (b) the importer path, from a CSV of the same events
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "events.csv"
        header = [
            "customer",
            "session_id",
            "type",
            "sku",
            "value",
            "quantity",
            "order_id",
            "query",
            "timestamp",
            "context",
        ]
        with csv_path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            for e in events:
                writer.writerow(
                    [
                        e["customer"],
                        "",
                        e["type"],
                        e["sku"] or "",
                        e.get("value", ""),
                        e.get("quantity", ""),
                        e.get("order_id", ""),
                        e.get("query", ""),
                        e["timestamp"],
                        json.dumps(e["context"]) if e.get("context") else "",
                    ]
                )

        truncate()
        t0 = time.perf_counter()
        cmd = [PY, "manage.py", "import_events", "--store", "bench", str(csv_path)]
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - t0
        if proc.returncode == 0:
            results.append(("(b) manage.py import_events (subprocess, incl. start-up)", elapsed))
        else:
            print(f"import_events failed ({proc.returncode}): {proc.stderr[-500:]}")

        try:
            from shop_recs.imports.importers import import_events
        except ImportError:
            import_events = None
        if import_events is not None:
            truncate()
            csv_path2 = Path(tmp) / "events2.csv"  # a new file: the importer refuses a re-import
            csv_path2.write_bytes(csv_path.read_bytes() + b"\n")
            t0 = time.perf_counter()
            job = import_events(store, csv_path2)
            elapsed = time.perf_counter() - t0
            results.append((f"(b) import_events() in process (status {getattr(job, 'status', '?')})", elapsed))

        truncate()
        t0 = time.perf_counter()
        with csv_path.open(newline="") as fh:
            reader = csv.reader(fh)
            next(reader)
            raw_rows = list(reader)
        sku_ids = product_ids_by_sku(store.pk, {r[3] for r in raw_rows if r[3]})
        with transaction.atomic():
            cust_ids = ensure_customers(store.pk, {r[0] for r in raw_rows})
            fromiso = datetime.fromisoformat
            n = write_events(
                store.pk,
                (
                    (
                        cust_ids[c],
                        s or None,
                        t,
                        sku_ids[k] if k else None,
                        float(v) if v else None,
                        int(q) if q else None,
                        o,
                        qu,
                        fromiso(ts),
                        json.loads(ctx) if ctx else None,
                    )
                    for c, s, t, k, v, q, o, qu, ts, ctx in raw_rows
                ),
            )
        elapsed = time.perf_counter() - t0
        assert n == len(events)
        results.append(("(b') csv.reader -> write_events (COPY), in process", elapsed))

    # (c) raw COPY of the same resolved rows: the floor (binary, as write_events does; text for reference)
    resolved = [
        (
            store.pk,
            cust_ids[e["customer"]],
            "",
            e["type"],
            sku_ids[e["sku"]] if e["sku"] else None,
            float(e["value"]) if e.get("value") is not None else None,
            e.get("quantity"),
            e.get("order_id", ""),
            e.get("query", ""),
            datetime.fromisoformat(e["timestamp"]),
            e.get("context"),
            datetime.now(UTC),
        )
        for e in events
    ]
    cols = ", ".join(("store_id",) + EVENT_COLUMNS + ("received_at",))
    from psycopg.types.json import Jsonb

    from shop_recs.activity.sql import _COPY_TYPES

    floor = 0.0
    for label, fmt in (("binary", " (FORMAT BINARY)"), ("text", "")):
        truncate()
        with psycopg.connect(db_url.replace("postgres://", "postgresql://")) as conn:
            t0 = time.perf_counter()
            with conn.cursor() as cur, cur.copy(f"COPY activity_event ({cols}) FROM STDIN{fmt}") as copy:
                if fmt:
                    copy.set_types(_COPY_TYPES)
                    for row in resolved:
                        copy.write_row(row)
                else:
                    for row in resolved:
                        copy.write_row(row[:10] + (None if row[10] is None else Jsonb(row[10]), row[11]))
            conn.commit()
            elapsed = time.perf_counter() - t0
        floor = floor or len(events) / elapsed
        results.append((f"(c) raw psycopg COPY ({label}), pre-resolved rows", elapsed))

    print()
    print(f"{'path':<66} {'seconds':>8} {'rows/s':>10} {'vs binary COPY':>15}")
    for name, secs in results:
        rate = len(events) / secs
        print(f"{name:<66} {secs:>8.2f} {rate:>10,.0f} {rate / floor:>15.0%}")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    api_rate = len(events) / results[0][1]
    print(f"\nAPI goal >= 50,000 events/s: {'met' if api_rate >= 50_000 else 'NOT met'} ({api_rate:,.0f})")


if __name__ == "__main__":
    main()
