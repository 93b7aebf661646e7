"""Serving throughput under gunicorn: recommendations, similar items and search vs a plain Django view.

    .venv/bin/python benchmarks/serve.py [--events 300000] [--rounds 3] [--duration 6] [--connections 12] [--reuse]

What it does, in one run:

1. (Re)creates the database ``shop_recs_bench_serve``, migrates, seeds the demo store
   (``seed_demo_store``, default sizes unless ``--events``/``--customers``/``--products``) and trains
   it (``train_store``: the default algorithms, result activated). ``--reuse`` skips this when the
   database already holds the trained store (for repeated measurements).
2. Starts gunicorn like production: ``--workers 2`` sync workers, ``DEBUG=0``, a random
   ``SECRET_KEY``, ``OPENBLAS_NUM_THREADS=1``/``OMP_NUM_THREADS=1``, ``DATABASE_URL`` PostgreSQL and
   ``REDIS_URL`` Redis database 5 (cache and broker; nothing is enqueued on these paths).
3. Drives load from a separate process (``wrk`` with a Lua script that rotates the request paths
   and sends the API key; without ``wrk`` a Python keep-alive load generator, which is itself
   CPU-bound and understates the server) against, one after the other, each after a warm-up:

   * ``GET /healthz``: a plain Django JSON view (the floor: middleware + URL routing, no work);
   * ``GET /api/v1/recommendations/customer/<id>``: customers with events in the store's last
     week (real-time blending on), rotated;
   * ``GET /api/v1/products/<sku>/similar``: products the model knows, rotated;
   * ``GET /api/v1/search?q=...``: one- and two-word queries from product titles, rotated.

   The recommendations row is measured after ``--recs-warmup`` (12) seconds: each worker keeps the
   activity of the customers it has served in memory (``live_activity``, fed by Redis pub/sub), and
   the row is meant to show that steady state. Then a second gunicorn, identical but with
   ``SERVING_ACTIVITY_CACHE=0``, serves the same requests: the "activity cache off" row, i.e. what
   every cache miss costs (a customer's first request on a worker, the first request after each of
   their events).

   * ``mixed`` (wrk only): per customer a ``POST /api/v1/events`` view followed by two recommendation
     requests for that customer, i.e. real time under load: every event drops the customer's cached
     activity on every worker, so the first request after it takes the miss path. No goal; it shows
     what interleaved traffic costs next to the steady state of the recommendations row.

   Each endpoint is measured in ``--rounds`` rounds of (plain view, endpoint), ``--duration`` seconds
   each, and every ratio is taken within its round: on this shared machine the plain view alone
   moved by 15% between minutes, which made ratios of two separate measurements swing by as much.

4. Prints per round and then the medians: req/s, p50, p99, the ratio to the plain view (with its
   spread over the rounds), the p99 factor, the goals, the load average, and the peak RSS of each
   gunicorn worker (``VmHWM`` from ``/proc``).

Client and server share the machine's cores: the figures are for "2 workers + the load generator on
this box", the same for every endpoint, so the ratios are the meaningful part. It is a script, not
a test: nothing asserts on timings.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PY = sys.executable

from benchmarks.ingest import free_port, recreate_database, wait_for  # noqa: E402

#: Goals (fraction of the plain view's req/s; the recommendation p99 at most 2x the plain p99).
GOALS = {"recommendations": 0.60, "similar": 0.40, "search": 0.40}
P99_FACTOR = 2.0

LUA = r"""
-- One request per line: "<path>" (GET) or "POST<TAB><path><TAB><json body>".
local paths = {}
for line in io.lines(os.getenv("BENCH_PATHS")) do
  local method, path, body = line:match("^(POST)\t([^\t]+)\t(.*)$")
  if method then paths[#paths + 1] = {method, path, body} else paths[#paths + 1] = {"GET", line, nil} end
end
local key = os.getenv("BENCH_KEY")
local counter = 0
local thread_no = 0
local threads = {}

function setup(thread)
  thread:set("id", thread_no)
  thread_no = thread_no + 1
  table.insert(threads, thread)
end

function init(args)
  counter = id * 7919
  bad = 0
end

function request()
  counter = counter + 1
  local headers = {}
  if key ~= nil and key ~= "" then headers["Authorization"] = "Bearer " .. key end
  local r = paths[(counter % #paths) + 1]
  if r[1] == "POST" then headers["Content-Type"] = "application/json" end
  return wrk.format(r[1], r[2], headers, r[3])
end

function response(status, headers, body)
  if status ~= 200 and status ~= 201 then bad = bad + 1 end
end

function done(summary, latency, requests)
  local non200 = 0
  for _, t in ipairs(threads) do non200 = non200 + (t:get("bad") or 0) end
  io.write(string.format(
    "BENCH_JSON {\"requests\": %d, \"seconds\": %.3f, \"p50_us\": %d, \"p99_us\": %d, " ..
    "\"socket_errors\": %d, \"non200\": %d}\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, non200))
end
"""


# --- setup ----------------------------------------------------------------------------------------


def setup_store(args: argparse.Namespace, env: dict[str, str]) -> dict:
    """Create + migrate + seed + train (or reuse); returns the key, paths and setup timings."""
    info_file = Path(tempfile.gettempdir()) / f"{args.db}.json"
    if args.reuse and info_file.exists():
        print(f"--reuse: using the trained store in {args.db} ({info_file})")
        return json.loads(info_file.read_text())
    print(f"database {args.server}/{args.db}: recreate + migrate", flush=True)
    recreate_database(args.server, args.db)
    subprocess.run([PY, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    code = f"""
import json, time, sys
import django
django.setup()
from shop_recs.imports.demo import DemoConfig, seed_demo_store
from shop_recs.training.services import train_store
from shop_recs.stores.models import ApiKey, Store
from shop_recs.stores.scoping import store_scope
store = Store.objects.create(name="Bench serve", slug="bench-serve")
_, key = ApiKey.generate(store, "bench")
t0 = time.perf_counter()
seeded = seed_demo_store(store, DemoConfig(events={args.events}, customers={args.customers}, products={args.products}))
t_seed = time.perf_counter() - t0
from django.db import connection
# Fresh statistics, as autovacuum would have after a bulk load: without them the planner ANDs the
# (store, timestamp) index into the per-customer query and it takes ~40 ms instead of ~0.3 ms.
with connection.cursor() as cur:
    cur.execute("ANALYZE")
t0 = time.perf_counter()
run = train_store(store)
t_train = time.perf_counter() - t0
from django.db import connection
with store_scope(store), connection.cursor() as cur:
    cur.execute("SELECT max(timestamp) FROM activity_event WHERE store_id = %s", [store.pk])
    latest = cur.fetchone()[0]
    cur.execute(
        "SELECT c.external_id FROM activity_customer c WHERE c.store_id = %s AND EXISTS ("
        " SELECT 1 FROM activity_event e WHERE e.customer_id = c.id AND e.product_id IS NOT NULL"
        " AND e.timestamp > %s - interval '7 days') ORDER BY c.id LIMIT 2000",
        [store.pk, latest],
    )
    customers = [r[0] for r in cur.fetchall()]
    from shop_recs.training.artifacts import load_active_model
    loaded = load_active_model(store)
    cur.execute("SELECT id, sku, title FROM catalog_product WHERE store_id = %s AND is_active", [store.pk])
    prods = cur.fetchall()
known = set(loaded.item_ids.tolist())
skus = [sku for pk, sku, _t in prods if pk in known]
titles = [t for _pk, _s, t in prods]
print("BENCH_SETUP " + json.dumps({{
    "key": key, "customers": customers, "skus": skus, "titles": titles,
    "seed_seconds": round(t_seed, 1), "train_seconds": round(t_train, 1),
    "events": seeded.events, "n_customers": seeded.customers, "n_products": seeded.products,
    "active_algorithm": loaded.version.algorithm, "timings": run.timings,
}}))
"""
    print(
        f"seeding the demo store ({args.events:,} events, {args.customers:,} customers, "
        f"{args.products:,} products) and training it ...",
        flush=True,
    )
    out = subprocess.run([PY, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("BENCH_SETUP "))
    info = json.loads(line[len("BENCH_SETUP ") :])
    info_file.write_text(json.dumps(info))
    return info


def make_paths(info: dict, seed: int = 11) -> dict[str, list[str]]:
    rng = random.Random(seed)
    customers = list(info["customers"])
    rng.shuffle(customers)
    skus = list(info["skus"])
    rng.shuffle(skus)
    words: list[str] = []
    for title in info["titles"]:
        words.extend(w.lower() for w in re.findall(r"[A-Za-z]{3,}", title))
    vocab = sorted(set(words))
    queries = []
    for _ in range(500):
        title_words = re.findall(r"[A-Za-z]{3,}", rng.choice(info["titles"]))
        if not title_words:
            continue
        q = " ".join(rng.sample(title_words, min(len(title_words), rng.choice([1, 2])))).lower()
        queries.append(q)
    queries += rng.sample(vocab, min(100, len(vocab)))
    rng.shuffle(queries)
    from urllib.parse import quote

    # Real time under load: per customer, one "view" event posted and then two recommendation
    # requests (a page view with two widgets). Every event drops the customer's cached activity on
    # every worker, so each first request after it takes the miss path.
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    mixed = []
    for c in customers:
        event = json.dumps({"customer": c, "type": "view", "sku": rng.choice(skus), "timestamp": now})
        rec = f"/api/v1/recommendations/customer/{quote(c)}"
        mixed += [f"POST\t/api/v1/events\t{event}", rec, rec]
    return {
        "plain": ["/healthz"],
        "mixed": mixed,
        "recommendations": [f"/api/v1/recommendations/customer/{quote(c)}" for c in customers],
        "similar": [f"/api/v1/products/{quote(s)}/similar" for s in skus],
        "search": [f"/api/v1/search?q={quote(q)}" for q in queries],
    }


# --- load generators ------------------------------------------------------------------------------


def run_wrk(port: int, key: str, paths: list[str], seconds: float, connections: int, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        lua = Path(tmp) / "rotate.lua"
        lua.write_text(LUA)
        plist = Path(tmp) / "paths.txt"
        plist.write_text("\n".join(paths) + "\n")
        env = {**os.environ, "BENCH_PATHS": str(plist), "BENCH_KEY": key}
        cmd = [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "-s",
            str(lua),
            f"http://127.0.0.1:{port}",
        ]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("BENCH_JSON "))
    res = json.loads(line[len("BENCH_JSON ") :])
    return {
        "rps": res["requests"] / res["seconds"],
        "p50_ms": res["p50_us"] / 1000,
        "p99_ms": res["p99_us"] / 1000,
        "errors": res["socket_errors"] + res["non200"],
        "requests": res["requests"],
    }


def run_python(port: int, key: str, paths: list[str], seconds: float, connections: int, threads: int) -> dict:
    """Fallback when ``wrk`` is absent: keep-alive ``http.client`` threads (GIL-bound: a lower bound)."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    deadline = time.perf_counter() + seconds
    lat: list[list[float]] = [[] for _ in range(connections)]
    errors = [0] * connections

    def worker(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        i = n * 7919
        while time.perf_counter() < deadline:
            i += 1
            t0 = time.perf_counter()
            conn.request("GET", paths[i % len(paths)], headers=headers)
            resp = conn.getresponse()
            resp.read()
            lat[n].append(time.perf_counter() - t0)
            if resp.status != 200:
                errors[n] += 1
        conn.close()

    ts = [threading.Thread(target=worker, args=(n,)) for n in range(connections)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    elapsed = time.perf_counter() - t0
    import numpy as np

    all_lat = np.concatenate([np.asarray(x) for x in lat]) if any(lat) else np.zeros(1)
    return {
        "rps": len(all_lat) / elapsed,
        "p50_ms": float(np.percentile(all_lat, 50) * 1000),
        "p99_ms": float(np.percentile(all_lat, 99) * 1000),
        "errors": sum(errors),
        "requests": len(all_lat),
    }


# --- memory ---------------------------------------------------------------------------------------


def worker_pids(master: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{master}/task/{master}/children").read_text().split()]
    except OSError:
        return []


def status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def start_gunicorn(env: dict[str, str], workers: int) -> tuple[int, subprocess.Popen]:
    """gunicorn like production (sync workers) on a free port; returns once it answers."""
    port = free_port()
    proc = subprocess.Popen(
        [
            str(Path(PY).parent / "gunicorn"),
            "shop_recs.wsgi",
            "-w",
            str(workers),
            "-k",
            "sync",
            "-b",
            f"127.0.0.1:{port}",
            "--timeout",
            "120",
            "--log-level",
            "warning",
            "--backlog",
            "256",
        ],
        cwd=ROOT,
        env=env,
    )
    wait_for(port, proc)
    return port, proc


# --- memory per cached customer (in process, tracemalloc) ---------------------------------------------


def measure_memory(args: argparse.Namespace, info: dict) -> dict:
    """What one cached customer costs a worker: ``--memory N`` customers served one recommendation
    page each through the Django handler (so each entry holds its activity, its personal memo and one
    served page, as under load), then the traced memory with the entries minus the same after emptying
    the cache, per entry, split into its activity, its personal candidates (``PersonalMemo``) and its
    served page (``CompactPage``) by removing each in turn. The product cards' JSON that memoised
    pages share (``responses.card_json``) lives on the catalog snapshot, not on an entry: it is
    reported on its own (bounded by the catalog, not by the customers).

    ``--memory-cap K``: first (before tracemalloc runs) every customer of the store (up to 2,000) twice
    with ``SERVING_ACTIVITY_MAX_ENTRIES = K``: the most entries seen (the cap holds when <= K) and the
    process's RSS growth; after the per-entry figures the same cache refilled under tracemalloc (the
    entries' traced size: full minus emptied); projected to the production cap
    (``SERVING_ACTIVITY_MAX_ENTRIES``, default 20,000)."""
    import gc
    import tracemalloc
    from urllib.parse import quote

    os.environ.update(bench_env(args))
    import django

    django.setup()
    from django.conf import settings
    from django.test import Client

    from shop_recs.serving import live_activity

    production_cap = int(settings.SERVING_ACTIVITY_MAX_ENTRIES)
    client = Client()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {info['key']}"}

    def serve(customers: list[str]) -> int:
        """Serve each customer one page; the most entries the cache held along the way."""
        most = 0
        for c in customers:
            assert client.get(f"/api/v1/recommendations/customer/{quote(c)}", **headers).status_code == 200
            most = max(most, len(live_activity._feed.entries))
        return most

    def traced() -> int:
        gc.collect()
        return tracemalloc.get_traced_memory()[0]

    customers = info["customers"][: args.memory]
    serve(customers[:20])  # warm-up: model, snapshot, indexes, the subscription
    cap: dict[str, Any] = {}
    if args.memory_cap:
        settings.SERVING_ACTIVITY_MAX_ENTRIES = args.memory_cap
        live_activity.clear()
        gc.collect()
        rss0 = status_kb(os.getpid(), "VmRSS")
        cap["most"] = max(serve(info["customers"]), serve(info["customers"]))
        cap["rss_kib"] = status_kb(os.getpid(), "VmRSS") - rss0
        cap["entries"] = live_activity.stats()["entries"]
        settings.SERVING_ACTIVITY_MAX_ENTRIES = production_cap
    live_activity.clear()
    gc.collect()
    tracemalloc.start()
    serve(customers)
    serve(customers)  # again, from the memo: the shared card JSON fills as under load (no entry grows)
    entries = live_activity.stats()["entries"]
    with_entries = traced()
    values = [customer for _t, customer in list(live_activity._feed.entries.values())]
    for customer in values:
        customer.memo.pop("pages", None)
    without_pages = traced()
    for customer in values:
        customer.memo.pop("personal", None)
    without_memo = traced()
    del values
    live_activity.clear()
    without = traced()
    per = max(1, entries)
    out = {
        "entries": entries,
        "bytes_per_entry": (with_entries - without) / per,
        "activity_bytes_per_entry": (without_memo - without) / per,
        "personal_bytes_per_entry": (without_pages - without_memo) / per,
        "page_bytes_per_entry": (with_entries - without_pages) / per,
        "shared_card_bytes": _card_json_bytes(),
    }
    out["memo_bytes_per_entry"] = out["personal_bytes_per_entry"] + out["page_bytes_per_entry"]
    print(
        f"memory per cached customer over {entries} entries (tracemalloc): {out['bytes_per_entry'] / 1024:.1f} KB "
        f"= activity {out['activity_bytes_per_entry'] / 1024:.1f} KB + personal candidates "
        f"{out['personal_bytes_per_entry'] / 1024:.1f} KB + served page {out['page_bytes_per_entry'] / 1024:.1f} KB; "
        f"shared by all: the product cards' JSON, {out['shared_card_bytes'] / 1024:.0f} KB per catalog snapshot"
    )
    print(
        f"at the production cap (SERVING_ACTIVITY_MAX_ENTRIES={production_cap:,}): "
        f"{out['bytes_per_entry'] * production_cap / 2**20:.0f} MiB of cached customers per worker (projected)"
    )
    if args.memory_cap:
        settings.SERVING_ACTIVITY_MAX_ENTRIES = args.memory_cap
        live_activity.clear()
        cap["most"] = max(cap["most"], serve(info["customers"]))
        cap["traced_entries"] = live_activity.stats()["entries"]
        full = traced()
        live_activity.clear()
        cap["traced_bytes"] = full - traced()  # the entries only, not the per-state caches that grew too
        settings.SERVING_ACTIVITY_MAX_ENTRIES = production_cap
        each = cap["traced_bytes"] / max(1, cap["traced_entries"])
        print(
            f"cap {args.memory_cap:,}: {len(info['customers']):,} customers served 3 times, at most {cap['most']:,} "
            f"entries ({'the cap holds' if cap['most'] <= args.memory_cap else 'CAP EXCEEDED'}); the full cache: "
            f"{cap['traced_entries']:,} entries = {cap['traced_bytes'] / 2**20:.1f} MiB traced ({each / 1024:.1f} KB "
            f"each; projected to {production_cap:,}: {each * production_cap / 2**20:.0f} MiB); process RSS "
            f"+{cap['rss_kib'] / 1024:.1f} MiB while it first filled ({cap['entries']:,} entries, tracemalloc off; "
            "this includes the per-state caches that grow with new customers' histories, e.g. content neighbours)"
        )
        out["cap"] = {"cap": args.memory_cap, **cap}
    tracemalloc.stop()
    return out


def _card_json_bytes() -> int:
    """The shared card JSON of every catalog snapshot in this process (``responses.card_json``)."""
    from shop_recs.serving import responses  # why: Django is set up by the caller
    from shop_recs.serving.snapshot import _catalog_cache  # why: as above

    total = 0
    for snap in list(_catalog_cache.values()):
        cards = snap._derived.get(responses._CARDS_KEY) or {}
        total += sum(sys.getsizeof(b) for b in cards.values()) + sys.getsizeof(cards)
    return total


# --- in process: the mixed row without HTTP or a shared client ---------------------------------------


def measure_in_process(args: argparse.Namespace, info: dict) -> None:
    """``--in-process N``: the mixed row's requests through Django's handler in this one process (no
    gunicorn, no wrk), in rounds alternating with the plain view, N customers per round: wall and CPU
    milliseconds per request and the ratio to the plain view. On a box whose load is far above its core
    count the HTTP rows swing by 2x between rounds; a process's own CPU time per request does not."""
    import random
    from datetime import UTC, datetime
    from urllib.parse import quote

    os.environ.update(bench_env(args))
    import django

    django.setup()
    from django.conf import settings
    from django.test import Client

    client = Client()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {info['key']}"}
    rng = random.Random(3)
    customers, skus = list(info["customers"]), info["skus"]

    def plain(n: int) -> None:
        for _ in range(n):
            assert client.get("/healthz").status_code == 200

    def mixed(batch: list[str]) -> None:
        for c in batch:
            event = {"customer": c, "type": "view", "sku": rng.choice(skus), "timestamp": datetime.now(UTC).isoformat()}
            r = client.post("/api/v1/events", json.dumps(event), content_type="application/json", **auth)
            assert r.status_code == 201, r.content
            for _ in range(2):
                assert client.get(f"/api/v1/recommendations/customer/{quote(c)}", **auth).status_code == 200

    def recs(batch: list[str]) -> None:
        for c in batch:
            assert client.get(f"/api/v1/recommendations/customer/{quote(c)}", **auth).status_code == 200

    def clock(fn: Any, *a: Any) -> tuple[float, float]:
        w, c = time.perf_counter(), time.process_time()
        fn(*a)
        return time.perf_counter() - w, time.process_time() - c

    n = args.in_process
    recs(customers[: 4 * n])  # warm-up: model, snapshots, every rotated customer cached once
    mixed(customers[:50])
    rows: dict[str, list[tuple[float, float, float, float]]] = {"mixed": [], "cached": [], "cache off": []}
    for r in range(args.rounds):
        batch = customers[(r % 4) * n : (r % 4 + 1) * n]
        for name in rows:
            settings.SERVING_ACTIVITY_CACHE = name != "cache off"
            pw, pc = clock(plain, 3 * n)
            ew, ec = clock(mixed if name == "mixed" else recs, batch)
            per = 3 * n if name == "mixed" else n
            rows[name].append((ew / per * 1000, ec / per * 1000, pw / (3 * n) * 1000, pc / (3 * n) * 1000))
            print(
                f"  in process, {name:9s} round {r + 1}: {ew / per * 1000:.2f} ms/request (CPU {ec / per * 1000:.2f}); "
                f"plain {pw / (3 * n) * 1000:.2f} (CPU {pc / (3 * n) * 1000:.2f}); load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    settings.SERVING_ACTIVITY_CACHE = True
    median = statistics.median
    for name, vals in rows.items():
        wall = median(v[2] / v[0] for v in vals)
        cpu = median(v[3] / v[1] for v in vals)
        print(
            f"in process, {name}: {median(v[0] for v in vals):.2f} ms/request wall, {median(v[1] for v in vals):.2f} "
            f"CPU; vs plain: {wall:.0%} of its rate by wall time, {cpu:.0%} by CPU time (medians of {len(vals)} rounds)"
        )


# --- main -----------------------------------------------------------------------------------------


def bench_env(args: argparse.Namespace) -> dict[str, str]:
    """The environment of the benchmark's processes: the production settings (DEBUG off, a throw-away
    key) on the bench database and Redis, plain HTTP, one BLAS thread per process."""
    return {
        **os.environ,
        "DATABASE_URL": f"{args.server}/{args.db}",
        "REDIS_URL": args.redis,
        "CELERY_BROKER_URL": args.redis,
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(40),
        "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "LOG_LEVEL": "WARNING",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "DJANGO_SETTINGS_MODULE": "shop_recs.settings",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=300_000, help="demo events (DemoConfig default)")
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--products", type=int, default=2_000)
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per measurement (each side of a round)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of (plain view, endpoint) per endpoint")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up per endpoint")
    parser.add_argument(
        "--recs-warmup",
        type=float,
        default=12.0,
        help="seconds of warm-up for the recommendations row: each worker caches each customer's activity "
        "once it has served them (the cache is per process), which takes ~12 s for 1,904 customers x 2 workers",
    )
    parser.add_argument("--connections", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--db", default="shop_recs_bench_serve")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/5")
    parser.add_argument("--reuse", action="store_true", help="reuse the seeded + trained database")
    parser.add_argument("--only", default="", help="comma-separated subset: recommendations,similar,search")
    parser.add_argument("--python-client", action="store_true", help="use the Python load generator")
    parser.add_argument(
        "--log-buffer-rows",
        type=int,
        default=None,
        help="SERVING_LOG_BUFFER_ROWS for the workers (default: production's, 500 = buffered; 0 = one INSERT per list)",
    )
    parser.add_argument(
        "--no-cold",
        action="store_true",
        help="skip the extra row served by a second gunicorn with the activity cache off",
    )
    parser.add_argument(
        "--memory",
        type=int,
        default=0,
        help="instead of the load: serve N customers in process and print the memory per cached customer",
    )
    parser.add_argument(
        "--memory-cap",
        type=int,
        default=0,
        help="with --memory: then serve every customer (up to 2,000) with SERVING_ACTIVITY_MAX_ENTRIES at this "
        "value and show the cache stays within it, with its traced size and the RSS growth",
    )
    parser.add_argument(
        "--in-process",
        type=int,
        default=0,
        help="instead of the load: the mixed, cached and cache-off rows in process, N customers per round",
    )
    args = parser.parse_args()

    env = bench_env(args)
    if args.in_process:
        measure_in_process(args, setup_store(args, env))
        return
    if args.memory:
        measure_memory(args, setup_store(args, env))
        return
    if args.log_buffer_rows is not None:
        env["SERVING_LOG_BUFFER_ROWS"] = str(args.log_buffer_rows)
    print(f"list/search log: SERVING_LOG_BUFFER_ROWS={env.get('SERVING_LOG_BUFFER_ROWS', '500 (production default)')}")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    info = setup_store(args, env)
    print(
        f"store: {info['events']:,} events, {info['n_customers']:,} customers, {info['n_products']:,} products; "
        f"seed {info['seed_seconds']} s, train {info['train_seconds']} s; active model {info['active_algorithm']}"
    )
    paths = make_paths(info)
    print(
        f"rotating {len(paths['recommendations'])} customers (events in the last 7 days), "
        f"{len(paths['similar'])} skus, {len(paths['search'])} queries"
    )

    use_wrk = shutil.which("wrk") is not None and not args.python_client
    if not use_wrk:
        print(
            "wrk not found: install it (Debian/Ubuntu: apt-get install -y wrk) for trustworthy figures. "
            "Falling back to the Python load generator, which competes for the same cores and saturates "
            "before the server does.",
            file=sys.stderr,
        )
    load = run_wrk if use_wrk else run_python

    # name -> per-round results of that endpoint and of the plain view measured right before it.
    rounds: dict[str, list[tuple[dict, dict]]] = {}

    def run(port: int, name: str, path_key: str, seconds: float) -> dict:
        key = "" if path_key == "plain" else info["key"]
        return load(port, key, paths[path_key], seconds, args.connections, args.threads)

    def measure(port: int, name: str, path_key: str) -> None:
        """Warm up, then ``--rounds`` x (plain view, endpoint), each ``--duration`` seconds: the ratio is
        taken within each round, so a slower or faster machine minute moves both sides of it."""
        # Warm-up: every worker loads the model, snapshots and indexes before the clock starts (and,
        # for the recommendations rows, has met every rotated customer once).
        run(port, "plain", "plain", args.warmup)
        run(port, name, path_key, args.recs_warmup if path_key in ("recommendations", "mixed") else args.warmup)
        for r in range(args.rounds):
            for _attempt in range(3):
                plain = run(port, "plain", "plain", args.duration)
                res = run(port, name, path_key, args.duration)
                if plain["requests"] and res["requests"]:
                    break
                # On an overloaded box a worker can stall for seconds (another job's burst): measure again.
                print(f"  {name}: a side answered nothing within {args.duration:.0f} s; measuring the round again")
            else:
                continue
            rounds.setdefault(name, []).append((res, plain))
            print(
                f"  {name:20s} round {r + 1}: {res['rps']:6.0f} req/s (plain {plain['rps']:5.0f}) = "
                f"{res['rps'] / plain['rps']:4.0%}  p99 {res['p99_ms']:6.2f} ms (plain {plain['p99_ms']:5.2f})  "
                f"errors {res['errors'] + plain['errors']}  load {os.getloadavg()[0]:.2f}",
                flush=True,
            )

    names = [n for n in ("recommendations", "similar", "search", "mixed") if not args.only or n in args.only]
    if not use_wrk and "mixed" in names:
        names.remove("mixed")  # the Python load generator only sends GETs
    port, gunicorn = start_gunicorn(env, args.workers)
    try:
        for name in names:
            measure(port, name, name)
        pids = worker_pids(gunicorn.pid)
        peak = {pid: status_kb(pid, "VmHWM") for pid in pids}
        now = {pid: status_kb(pid, "VmRSS") for pid in pids}
    finally:
        gunicorn.terminate()
        gunicorn.wait(timeout=30)
    if not args.no_cold and "recommendations" in names:
        # The same requests with every customer read from PostgreSQL (the activity cache's miss path,
        # e.g. the first request after each event), from a second server with the cache switched off.
        port, cold = start_gunicorn({**env, "SERVING_ACTIVITY_CACHE": "0"}, args.workers)
        try:
            measure(port, "recommendations_cold", "recommendations")
        finally:
            cold.terminate()
            cold.wait(timeout=30)

    median = statistics.median

    print()
    print(
        f"gunicorn {args.workers} sync workers, {'wrk' if use_wrk else 'python'} client {args.connections} "
        f"connections; per endpoint {args.rounds} rounds of (plain view {args.duration:.0f} s, endpoint "
        f"{args.duration:.0f} s); medians over the rounds; ratios taken within each round"
    )
    header = (
        f"| {'endpoint':30s} | {'req/s':>7s} | {'p50 ms':>7s} | {'p99 ms':>7s} | {'plain req/s':>11s} | "
        f"{'plain p99':>9s} | {'vs plain (min-max)':>18s} | p99 / plain p99 | goal |"
    )
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    labels = {
        "recommendations": "GET /recommendations/customer",
        "recommendations_cold": "  same, activity cache off",
        "similar": "GET /products/<sku>/similar",
        "search": "GET /search?q=",
        "mixed": "mixed: POST view + 2 GET recs",
    }
    for name, pairs in rounds.items():
        ratios = [res["rps"] / plain["rps"] for res, plain in pairs]
        p99_factors = [res["p99_ms"] / plain["p99_ms"] for res, plain in pairs]
        ratio, p99_factor = median(ratios), median(p99_factors)
        goal = ""
        if name in GOALS:
            goal = f">= {GOALS[name]:.0%}: {'met' if ratio >= GOALS[name] else 'MISSED'}"
            if name == "recommendations":
                goal += f"; p99 <= {P99_FACTOR:.0f}x: {'met' if p99_factor <= P99_FACTOR else 'MISSED'}"
        print(
            f"| {labels[name]:30s} | {median([r['rps'] for r, _ in pairs]):7.0f} | "
            f"{median([r['p50_ms'] for r, _ in pairs]):7.2f} | {median([r['p99_ms'] for r, _ in pairs]):7.2f} | "
            f"{median([p['rps'] for _, p in pairs]):11.0f} | {median([p['p99_ms'] for _, p in pairs]):9.2f} | "
            f"{ratio:5.0%} ({min(ratios):.0%}-{max(ratios):.0%}) | {p99_factor:15.2f} | {goal} |"
        )
    print()
    for pid in pids:
        print(f"gunicorn worker {pid}: peak RSS {peak[pid] / 1024:.0f} MiB (at the end {now[pid] / 1024:.0f} MiB)")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
