"""Ad-serving throughput under gunicorn, interleaved with a plain Django view in the same run.

    .venv/bin/python benchmarks/ads.py [--events 100000] [--campaigns 8] [--rounds 5] [--duration 6] [--reuse]

1. Seeds and trains the demo store with ``benchmarks/serve.py``'s setup (``--reuse`` keeps a seeded
   database), then (re)creates ``--campaigns`` active, untargeted CPM campaigns on the store's largest
   categories with a money budget large enough never to run out and a frequency cap of 1000 (so every
   request serves, charges and records an impression).
2. Counts the database round trips of one warm ``serve_ads`` call in process (anonymous and known
   customer), then starts gunicorn with 2 sync workers on PostgreSQL/Redis (``serve.bench_env``: DEBUG
   off, BLAS 1 thread) and, after a warm-up, runs ``--rounds`` rounds of (``GET /healthz``, then
   ``GET /api/v1/ads?customer=<id>&slot=home&n=1`` over rotating known customers), each ``--duration``
   seconds with ``wrk``. The ratio is taken within each round, so a busier minute of the shared
   machine moves both sides; the table reports the median round.

3. ``--in-process N`` (after the HTTP rounds, or alone with ``--rounds 0``): in one process through
   Django's test client, rounds alternating N plain-view requests and N ads requests (rotating known
   customers): wall and CPU (``time.process_time``) milliseconds per request, database round trips
   per ads request, and the ratio to the plain view. On a box loaded far past its cores the HTTP rows
   swing between rounds; a process's own CPU time per request does not. ``--profile`` adds a cProfile
   (CPU-time timer) of the ads requests of one round (top functions by cumulative and by own time).

It prints a table; it is not a test and asserts nothing about timings.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PY = sys.executable

from benchmarks.serve import bench_env, run_python, run_wrk, setup_store, start_gunicorn  # noqa: E402

CAMPAIGNS = """
import django
django.setup()
from datetime import timedelta
from decimal import Decimal
from django.db.models import Count
from django.utils import timezone
from shop_recs.ads.models import Campaign, Impression, DailyCap
from shop_recs.catalog.models import Category
from shop_recs.stores.models import Store
from shop_recs.stores.scoping import store_scope
store = Store.objects.get(slug="bench-serve")
with store_scope(store):
    Impression.objects.all().delete(); DailyCap.objects.all().delete(); Campaign.objects.all().delete()
    cats = list(Category.objects.annotate(n=Count("products")).order_by("-n")[:{n}])
    now = timezone.now()
    for i, cat in enumerate(cats):
        c = Campaign.objects.create(store=store, name=f"Bench {{i}}", title=f"Bench ad {{i}}",
            landing_url="https://shop.example/", starts_at=now - timedelta(days=1), ends_at=now + timedelta(days=30),
            pricing_model="cpm", bid=Decimal("1.00"), budget=Decimal("100000000.00"), frequency_cap=1000,
            weight=1.0 + i / 10, status="active")
        c.categories.set([cat])
print("campaigns", len(cats))
"""

ROUND_TRIPS = """
import django
django.setup()
from django.db import connection
from django.test.utils import CaptureQueriesContext
from shop_recs.ads import services
from shop_recs.stores.models import Store
from shop_recs.stores.scoping import store_scope
store = Store.objects.get(slug="bench-serve")
customer = {customer!r}
with store_scope(store):
    for who in (None, customer, None, customer):  # the first two warm the snapshot, model and caches
        with CaptureQueriesContext(connection) as q:
            ads = services.serve_ads(store, who).ads
    for who in (None, customer):
        with CaptureQueriesContext(connection) as q:
            ads = services.serve_ads(store, who).ads
        print(f"round trips of one warm serve_ads ({{'known customer' if who else 'anonymous'}}): {{len(q)}}"
              f" ({{len(ads)}} ad served)")
        for s in q.captured_queries:
            print("   ", s["sql"][:110].replace(chr(10), " "))
"""

IN_PROCESS = """
import cProfile, io, os, pstats, statistics, sys, time
from urllib.parse import quote
import django
django.setup()
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
key, customers, n, rounds, profile = {key!r}, {customers!r}, {n}, {rounds}, {profile}
client = Client()
auth = {{"HTTP_AUTHORIZATION": f"Bearer {{key}}"}}
ads_paths = [f"/api/v1/ads?customer={{quote(c)}}&slot=home&n=1" for c in customers]
state = {{"i": 0}}

def plain(k):
    for _ in range(k):
        assert client.get("/healthz").status_code == 200

def ads(k):
    for _ in range(k):
        path = ads_paths[state["i"] % len(ads_paths)]
        state["i"] += 1
        r = client.get(path, **auth)
        assert r.status_code == 200 and r.json()["ads"], r.content

def clock(fn, k):
    w, c = time.perf_counter(), time.process_time()
    fn(k)
    return (time.perf_counter() - w) / k * 1000, (time.process_time() - c) / k * 1000

plain(200)
ads(len(ads_paths))  # warm-up: model, snapshots, every rotated customer seen once
with CaptureQueriesContext(connection) as q:
    ads(n)
print(f"in process: {{len(q) / n:.2f}} database round trips per ads request (warm, {{n}} requests)", flush=True)
rows = []
for r in range(rounds):
    pw, pc = clock(plain, n)
    aw, ac = clock(ads, n)
    rows.append((aw, ac, pw, pc))
    print(f"  in process round {{r + 1}}: ads {{aw:.2f}} ms/request (CPU {{ac:.2f}}) | "
          f"plain {{pw:.2f}} (CPU {{pc:.2f}}) | load {{os.getloadavg()[0]:.2f}}", flush=True)
med = statistics.median
aw, ac, pw, pc = (med(r[i] for r in rows) for i in range(4))
print(f"in process (medians of {{len(rows)}} rounds): ads {{aw:.2f}} ms wall, {{ac:.2f}} ms CPU per request; "
      f"plain {{pw:.2f}} ms wall, {{pc:.2f}} ms CPU; ads at {{med(r[2] / r[0] for r in rows):.0%}} of the "
      f"plain view's rate by wall time, {{med(r[3] / r[1] for r in rows):.0%}} by CPU time")
if profile:
    prof = cProfile.Profile(time.process_time)  # CPU time: a wait for PostgreSQL or the scheduler is not ours
    prof.enable()
    ads(n)
    prof.disable()
    for order in ("cumulative", "tottime"):
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats(order).print_stats(30)
        print(f"cProfile of {{n}} ads requests, by {{order}}:")
        print("\\n".join(buf.getvalue().splitlines()[4:45]))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--products", type=int, default=2_000)
    parser.add_argument("--campaigns", type=int, default=8)
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per side of a round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of (plain view, ads)")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--db", default="shop_recs_bench_ads")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/5")
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--python-client", action="store_true")
    parser.add_argument("--in-process", type=int, default=0, metavar="N", help="in-process CPU rounds of N requests")
    parser.add_argument("--in-process-rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="with --in-process: cProfile the ads requests")
    args = parser.parse_args()
    env = bench_env(args)
    info = setup_store(args, env)
    # A reused database may predate the newest migrations (the ads tables, 0003_money).
    subprocess.run([PY, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    out = subprocess.run(
        [PY, "-c", CAMPAIGNS.format(n=args.campaigns)], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    print(out.stdout.strip(), f"| store: {info['events']:,} events, model {info['active_algorithm']}")
    trips = subprocess.run(
        [PY, "-c", ROUND_TRIPS.format(customer=info["customers"][0])],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    print(trips.stdout.strip())
    if args.rounds > 0:
        measure_http(args, env, info)
    if args.in_process:
        code = IN_PROCESS.format(
            key=info["key"],
            customers=info["customers"],
            n=args.in_process,
            rounds=args.in_process_rounds,
            profile=args.profile,
        )
        print(f"load average before the in-process rounds: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
        subprocess.run([PY, "-c", code], cwd=ROOT, env=env, check=True)


def measure_http(args: argparse.Namespace, env: dict[str, str], info: dict) -> None:
    """The interleaved gunicorn + wrk rounds (module docstring, step 2)."""
    paths = {
        "plain": ["/healthz"],
        "ads": [f"/api/v1/ads?customer={quote(c)}&slot=home&n=1" for c in info["customers"]],
    }
    use_wrk = shutil.which("wrk") is not None and not args.python_client
    load = run_wrk if use_wrk else run_python
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    port, gunicorn = start_gunicorn(env, args.workers)
    rounds: list[tuple[dict, dict]] = []
    try:
        load(port, "", paths["plain"], args.warmup, args.connections, args.threads)
        load(port, info["key"], paths["ads"], args.warmup, args.connections, args.threads)
        for r in range(args.rounds):
            plain = load(port, "", paths["plain"], args.duration, args.connections, args.threads)
            ads = load(port, info["key"], paths["ads"], args.duration, args.connections, args.threads)
            if not (plain["requests"] and ads["requests"]):
                print(f"  round {r + 1}: a side answered nothing; skipped")
                continue
            rounds.append((ads, plain))
            print(
                f"  round {r + 1}: ads {ads['rps']:6.0f} req/s p99 {ads['p99_ms']:6.2f} ms | plain {plain['rps']:6.0f} "
                f"req/s p99 {plain['p99_ms']:5.2f} ms | {ads['rps'] / plain['rps']:4.0%} throughput, "
                f"p99 x{ads['p99_ms'] / plain['p99_ms']:.1f} | errors {ads['errors'] + plain['errors']} | "
                f"load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
    finally:
        gunicorn.terminate()
        gunicorn.wait(timeout=30)
    if not rounds:
        print("no round completed")
        return
    ratio = statistics.median(a["rps"] / p["rps"] for a, p in rounds)
    p99_ratio = statistics.median(a["p99_ms"] / p["p99_ms"] for a, p in rounds)
    med = {k: statistics.median(a[k] for a, _ in rounds) for k in ("rps", "p50_ms", "p99_ms")}
    base = {k: statistics.median(p[k] for _, p in rounds) for k in ("rps", "p50_ms", "p99_ms")}
    print(
        f"\ngunicorn {args.workers} sync workers, {'wrk' if use_wrk else 'python'} client, {args.connections} "
        f"connections, {len(rounds)} interleaved rounds x {args.duration:.0f} s per side, "
        f"{len(info['customers'])} rotating customers (medians)"
    )
    print("| endpoint | req/s | p50 ms | p99 ms | vs plain (throughput) | p99 vs plain |")
    print("|---|---:|---:|---:|---:|---:|")
    plain_row = f"{base['rps']:.0f} | {base['p50_ms']:.2f} | {base['p99_ms']:.2f}"
    print(f"| GET /healthz (plain Django) | {plain_row} | 100% | 1.0x |")
    print(
        f"| GET /api/v1/ads (serve + charge + record) | {med['rps']:.0f} | {med['p50_ms']:.2f} | "
        f"{med['p99_ms']:.2f} | {ratio:.0%} | {p99_ratio:.1f}x |"
    )


if __name__ == "__main__":
    main()
