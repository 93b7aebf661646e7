"""Event ingestion throughput into PostgreSQL: batch API over HTTP and in process vs raw binary COPY.

    .venv/bin/python benchmarks/ingest.py [--rows 200000] [--batch 10000] [--clients 2] [--workers 2]
        [--rounds 3] [--no-importer] [--code PATH] [--db NAME]

What it does, in one run, against a dedicated database it (re)creates (``--db``, default ``shop_recs_bench``):

1. ``migrate``; one store, one API key, 1,000 products; N random events over 20,000 customers.
2. ``--rounds`` rounds, each measuring the three paths below in a rotated order (so a busy minute on the
   shared machine hits every path, not one), ``activity_event`` truncated before each measurement:

   (a) **API over HTTP**: one gunicorn (``DEBUG=0``, ``--workers`` sync workers, started once, warmed
       up: the customers exist after the warm-up batch) receives ``POST /api/v1/events/batch`` with the
       events as JSON batches of ``--batch`` rows from ``--clients`` threads (``http.client``). The
       bodies are encoded before the clock starts (as the COPY peer's rows are built before its clock);
       the clock covers sending them, the server's whole request (parse, validate, resolve skus and
       customers, COPY, commit) and reading each 201.
   (a') **the same batches in process**: the Django test client, one thread, no HTTP.
   (c) **raw binary COPY** (the floor): psycopg 3, one connection, one ``COPY activity_event ... FROM
       STDIN (FORMAT BINARY)`` of all rows, already resolved to ids (Python tuples built before the
       clock), ``write_row`` per row as ``sql.copy_event_rows`` does, one commit.
   (c') **binary COPY per batch**: the same, but one COPY and one commit per ``--batch`` rows, the
       transaction granularity of the API (each acknowledged batch is its own commit).

   For each measurement it also reads the CPU time spent by every process involved: this process, the
   gunicorn workers and the PostgreSQL backends of the database (``/proc/<pid>/stat``), so a reader
   can compare the work each path does when the shared machine's load swings the wall times.
3. Unless ``--no-importer``: once, (b) ``manage.py import_events`` (wall time of the subprocess,
   Django start-up included), the importer function in process, and (b') a minimal
   ``csv.reader -> write_events`` loop, with (c) once more beside them and a text-format COPY for reference.

``--code PATH`` runs another checkout's code (gunicorn and the in-process client import from PATH) with
this same harness: how before/after comparisons of a change are taken. Prints per-round tables, the
medians, and the load average at every round. It is a script, not a test: nothing asserts on timings.
"""

from __future__ import annotations

import argparse
import csv
import glob
import http.client
import json
import os
import random
import secrets
import socket
import statistics
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


TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def children_of(pid: int) -> list[int]:
    out = []
    for path in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(path) as fh:
                if int(fh.read().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(path.split("/")[2]))
        except (OSError, ValueError, IndexError):
            continue
    return out


class CpuMeter:
    """CPU seconds of this process, of a gunicorn's workers and of the database's PostgreSQL backends."""

    def __init__(self, db_url: str, db_name: str) -> None:
        self.conn = psycopg.connect(db_url.replace("postgres://", "postgresql://"), autocommit=True)
        self.db_name = db_name
        self.gunicorn: int | None = None

    def backends(self) -> list[int]:
        rows = self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [self.db_name]
        ).fetchall()
        return [r[0] for r in rows]

    def snapshot(self) -> dict[str, dict[int, float]]:
        workers = children_of(self.gunicorn) if self.gunicorn else []
        return {
            "client": {0: time.process_time()},
            "gunicorn": {p: proc_cpu(p) for p in workers},
            "postgres": {p: proc_cpu(p) for p in self.backends()},
        }

    @staticmethod
    def spent(before: dict, after: dict) -> dict[str, float]:
        # A backend that appeared during the measurement started from 0; one that ended is lost (rare:
        # connections persist across requests here).
        return {k: sum(v - before[k].get(p, 0.0) for p, v in after[k].items()) for k in after}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=2, help="concurrent HTTP clients")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of (a), (a'), (c), (c')")
    parser.add_argument("--no-importer", action="store_true", help="skip the importer rows (b), (b')")
    parser.add_argument("--code", type=Path, default=ROOT, help="the checkout whose code runs (default: this one)")
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--db", default="shop_recs_bench")
    args = parser.parse_args()
    code = args.code.resolve()

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
    print(f"code: {code}; load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")
    print(f"database {db_url}: recreate + migrate", flush=True)
    recreate_database(args.server, args.db)
    subprocess.run([PY, "manage.py", "migrate", "-v", "0"], cwd=code, env=env, check=True)

    os.environ.update(env)
    sys.path.insert(0, str(code))
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

    meter = CpuMeter(db_url, args.db)
    from django.test import Client

    client = Client()

    def post_in_process() -> None:
        for body in bodies:
            resp = client.post(
                "/api/v1/events/batch", body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {raw_key}"
            )
            if resp.status_code != 201:
                raise SystemExit(f"in-process batch failed: {resp.status_code} {resp.content[:300]!r}")

    # Warm-ups: the first request in a process pays for URL resolution and imports, and creates the customers.
    client.post(
        "/api/v1/events/batch", bodies[0], content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {raw_key}"
    )
    cust_ids = ensure_customers(store.pk, {e["customer"] for e in events})
    sku_ids = product_ids_by_sku(store.pk, {e["sku"] for e in events if e["sku"]})
    now = datetime.now(UTC)
    # The floor's rows: resolved ids and parsed times, built before its clock (as the API's bodies are).
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
            now,
        )
        for e in events
    ]
    cols = ", ".join(("store_id",) + EVENT_COLUMNS + ("received_at",))
    copy_types = [
        "int8",
        "int8",
        "varchar",
        "varchar",
        "int8",
        "float8",
        "int4",
        "varchar",
        "varchar",
        "timestamptz",
        "jsonb",
        "timestamptz",
    ]
    copy_conn = psycopg.connect(db_url.replace("postgres://", "postgresql://"))

    def raw_copy(per_batch: bool) -> None:
        step = args.batch if per_batch else len(resolved)
        for start in range(0, len(resolved), step):
            with copy_conn.cursor() as cur, cur.copy(f"COPY activity_event ({cols}) FROM STDIN (FORMAT BINARY)") as cp:
                cp.set_types(copy_types)
                for row in resolved[start : start + step]:
                    cp.write_row(row)
            copy_conn.commit()

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
        cwd=code,
        env={**env, "PYTHONPATH": str(code)},
    )
    meter.gunicorn = gunicorn.pid
    paths = {
        "a": (f"(a) API POST /events/batch over HTTP ({args.clients} clients, {args.workers} workers)", None),
        "a'": ("(a') same batches in process (Django test client, 1 thread)", post_in_process),
        "c": ("(c) raw binary COPY, all rows, 1 commit (floor)", lambda: raw_copy(False)),
        "c'": (f"(c') raw binary COPY, one COPY + commit per {args.batch:,} rows", lambda: raw_copy(True)),
    }
    rounds: list[dict[str, tuple[float, dict[str, float]]]] = []
    loads: list[tuple[float, float]] = []
    try:
        wait_for(port, gunicorn)
        for _ in range(2):  # warm-up: both workers import and connect
            post_batches(port, raw_key, bodies[:2], 2)
        order = list(paths)
        for r in range(args.rounds):
            load0 = os.getloadavg()[0]
            result: dict[str, tuple[float, dict[str, float]]] = {}
            for key in order[r % len(order) :] + order[: r % len(order)]:
                truncate()
                before = meter.snapshot()
                t0 = time.perf_counter()
                if key == "a":
                    post_batches(port, raw_key, bodies, args.clients)
                else:
                    paths[key][1]()
                elapsed = time.perf_counter() - t0
                result[key] = (elapsed, CpuMeter.spent(before, meter.snapshot()))
            rounds.append(result)
            loads.append((load0, os.getloadavg()[0]))
            floor = len(events) / result["c"][0]
            print(f"\nround {r + 1} (load {load0:.2f} -> {loads[-1][1]:.2f})")
            print(
                f"{'path':<70} {'seconds':>7} {'rows/s':>9} {'vs (c)':>7}"
                f" {'CPU s: client':>13} {'gunicorn':>8} {'pg':>6}"
            )
            for key, (name, _) in paths.items():
                secs, cpu = result[key]
                rate = len(events) / secs
                print(
                    f"{name:<70} {secs:>7.2f} {rate:>9,.0f} {rate / floor:>7.0%} {cpu['client']:>13.2f}"
                    f" {cpu['gunicorn']:>8.2f} {cpu['postgres']:>6.2f}"
                )
    finally:
        gunicorn.terminate()
        gunicorn.wait(timeout=30)

    print(
        f"\nmedians of {args.rounds} rounds ({len(events):,} rows; load {min(min(pair) for pair in loads):.2f}"
        f"-{max(max(pair) for pair in loads):.2f})"
    )
    print(
        f"{'path':<70} {'rows/s':>9} {'vs (c) per round':>22} {'vs (c)':>7} {'vs (c)':>7} {'CPU ms per 10k rows':>20}"
    )
    print(f"{'':<70} {'':>9} {'':>22} {'median':>7} {'(c2)':>7} {'(all processes)':>20}")
    for key, (name, _) in paths.items():
        rates = [len(events) / rnd[key][0] for rnd in rounds]
        ratios = [len(events) / rnd[key][0] / (len(events) / rnd["c"][0]) for rnd in rounds]
        ratios_cp = [rnd["c'"][0] / rnd[key][0] for rnd in rounds]
        cpu = statistics.median(sum(rnd[key][1].values()) for rnd in rounds) / len(events) * 10_000 * 1000
        print(
            f"{name:<70} {statistics.median(rates):>9,.0f} {' / '.join(f'{x:.0%}' for x in ratios):>22}"
            f" {statistics.median(ratios):>7.0%} {statistics.median(ratios_cp):>7.0%} {cpu:>20.0f}"
        )
    print("(c2): the median ratio against (c'), the binary COPY with one commit per batch")

    if args.no_importer:
        print(f"load average at end: {os.getloadavg()[0]:.2f}")
        return
    results: list[tuple[str, float]] = []
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
        proc = subprocess.run(cmd, cwd=code, env=env, capture_output=True, text=True)
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

    truncate()
    t0 = time.perf_counter()
    raw_copy(False)
    results.append(("(c) raw binary COPY, all rows, 1 commit (floor)", time.perf_counter() - t0))
    floor = len(events) / results[-1][1]
    truncate()  # the text format, for reference
    from psycopg.types.json import Jsonb

    t0 = time.perf_counter()
    with copy_conn.cursor() as cur, cur.copy(f"COPY activity_event ({cols}) FROM STDIN") as cp:
        for row in resolved:
            cp.write_row(row[:10] + (None if row[10] is None else Jsonb(row[10]), row[11]))
    copy_conn.commit()
    results.append(("(c) raw psycopg COPY (text), pre-resolved rows", time.perf_counter() - t0))
    print()
    print(f"{'path':<66} {'seconds':>8} {'rows/s':>10} {'vs binary COPY':>15}")
    for name, secs in results:
        rate = len(events) / secs
        print(f"{name:<66} {secs:>8.2f} {rate:>10,.0f} {rate / floor:>15.0%}")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
