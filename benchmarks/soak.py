"""Soak: a realistic traffic mix against gunicorn (PostgreSQL + Redis) for minutes, watched per minute.

    .venv/bin/python benchmarks/soak.py [--seconds 300] [--clients 4] [--max-entries 1000] [--reuse]

1. The demo store of ``benchmarks/serve.py`` (same database options; ``--reuse`` keeps it), plus the
   ad campaigns of ``benchmarks/ads.py`` (active, untargeted, a budget that never runs out).
2. gunicorn like production (2 sync workers, ``DEBUG=0``, one BLAS thread), with
   ``SERVING_ACTIVITY_MAX_ENTRIES=--max-entries`` (default 1,000, below the 2,000 rotated customers, so
   the activity cache fills up and evicts during the run: its cap is exercised, not just configured).
3. ``--clients`` client *processes* (not threads: a GIL-bound client would be the bottleneck), each on
   one keep-alive connection, loop over this mix, per 100 steps:

   * 60: ``POST /events`` (a view of a random product, timestamp now) then
     ``GET /recommendations/customer/<same customer>``: real time, each list after an event;
   * 15: ``GET /products/<sku>/similar``;
   * 10: ``GET /search?q=``;
   * 10: ``GET /ads?customer=...`` then, for each ad served, ``POST /ads/impressions/<id>/click``;
   * 5: ``POST /events/batch`` of 50 events over 10 customers.

   Every answer other than 200/201 and every connection error counts as an error (goal: 0).
4. Every 5 s the RSS of each gunicorn worker (``VmRSS``). Printed per minute (``--interval``): requests,
   req/s, p50/p99 of every request and of the recommendations alone, errors, each worker's RSS; at the
   end the RSS slope after the first interval (MiB per minute, least squares; goal: flat).

A script, not a test: it asserts nothing about timings. ``--seconds 60 --interval 20`` is a trial run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import random
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PY = sys.executable

from benchmarks.ads import CAMPAIGNS  # noqa: E402
from benchmarks.serve import bench_env, setup_store, start_gunicorn, status_kb, worker_pids  # noqa: E402

#: (kind, weight per 100 steps)
MIX = (("rec_after_event", 60), ("similar", 15), ("search", 10), ("ads_click", 10), ("batch", 5))


def _queries(titles: list[str], rng: random.Random) -> list[str]:
    out = []
    for _ in range(300):
        words = re.findall(r"[A-Za-z]{3,}", rng.choice(titles))
        if words:
            out.append(" ".join(rng.sample(words, min(len(words), rng.choice([1, 2])))).lower())
    return out


def client(n: int, port: int, key: str, info: dict, t0: float, seconds: float, out: mp.Queue) -> None:
    """One client process: the mix on one keep-alive connection; sends back its samples."""
    rng = random.Random(1000 + n)
    customers, skus = info["customers"], info["skus"]
    queries = _queries(info["titles"], rng)
    steps = [kind for kind, weight in MIX for _ in range(weight)]
    auth = {"Authorization": f"Bearer {key}"}
    post = {**auth, "Content-Type": "application/json"}
    #: (seconds since t0 at the answer, kind, latency s, ok)
    samples: list[tuple[float, str, float, bool]] = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(kind: str, method: str, path: str, body: bytes | None = None) -> dict | None:
        nonlocal conn
        start = time.perf_counter()
        try:
            conn.request(method, path, body=body, headers=post if body is not None else auth)
            resp = conn.getresponse()
            data = resp.read()
            ok = resp.status in (200, 201)
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            data, ok = b"", False
        end = time.perf_counter()
        samples.append((end - t0, kind, end - start, ok))
        return json.loads(data) if ok and data else None

    def now() -> str:
        return datetime.now(UTC).isoformat()

    while time.perf_counter() - t0 < seconds:
        kind = rng.choice(steps)
        if kind == "rec_after_event":
            c = rng.choice(customers)
            event = {"customer": c, "type": "view", "sku": rng.choice(skus), "timestamp": now()}
            call("event", "POST", "/api/v1/events", json.dumps(event).encode())
            call("recommendations", "GET", f"/api/v1/recommendations/customer/{quote(c)}")
        elif kind == "similar":
            call("similar", "GET", f"/api/v1/products/{quote(rng.choice(skus))}/similar")
        elif kind == "search":
            call("search", "GET", f"/api/v1/search?q={quote(rng.choice(queries))}")
        elif kind == "ads_click":
            answer = call("ads", "GET", f"/api/v1/ads?customer={quote(rng.choice(customers))}&slot=home&n=1")
            for ad in (answer or {}).get("ads", []):
                call("ad_click", "POST", f"/api/v1/ads/impressions/{ad['impression_id']}/click", b"")
        else:
            who = rng.sample(customers, 10)
            batch = [
                {
                    "customer": rng.choice(who),
                    "type": rng.choice(["view", "view", "click", "add_to_cart"]),
                    "sku": rng.choice(skus),
                    "timestamp": now(),
                }
                for _ in range(50)
            ]
            call("batch", "POST", "/api/v1/events/batch", json.dumps(batch).encode())
    conn.close()
    out.put(samples)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def slope_mib_per_minute(points: list[tuple[float, int]]) -> float:
    """Least-squares slope of (seconds, KiB) in MiB per minute."""
    if len(points) < 2:
        return float("nan")
    xs, ys = [p[0] for p in points], [p[1] / 1024 for p in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return 60 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="length of the soak (5 minutes by default)")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds per reported interval")
    parser.add_argument("--clients", type=int, default=4, help="client processes (one connection each)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--max-entries", type=int, default=1000, help="SERVING_ACTIVITY_MAX_ENTRIES of the workers")
    parser.add_argument("--campaigns", type=int, default=8)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--products", type=int, default=2_000)
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--db", default="shop_recs_bench_serve")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/5")
    parser.add_argument("--reuse", action="store_true", help="reuse the seeded + trained database")
    args = parser.parse_args()

    env = bench_env(args)
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    info = setup_store(args, env)
    subprocess.run([PY, "-c", CAMPAIGNS.format(n=args.campaigns)], cwd=ROOT, env=env, check=True)
    port, gunicorn = start_gunicorn({**env, "SERVING_ACTIVITY_MAX_ENTRIES": str(args.max_entries)}, args.workers)
    rss: dict[int, list[tuple[float, int]]] = {}
    try:
        queue: mp.Queue = mp.Queue()
        t0 = time.perf_counter()
        procs = [
            mp.Process(target=client, args=(n, port, info["key"], info, t0, args.seconds, queue))
            for n in range(args.clients)
        ]
        for p in procs:
            p.start()
        while time.perf_counter() - t0 < args.seconds:
            time.sleep(5)
            for pid in worker_pids(gunicorn.pid):
                rss.setdefault(pid, []).append((time.perf_counter() - t0, status_kb(pid, "VmRSS")))
        samples = [s for _ in procs for s in queue.get(timeout=120)]
        for p in procs:
            p.join(timeout=30)
    finally:
        gunicorn.terminate()
        gunicorn.wait(timeout=30)

    n_intervals = max(1, int(round(args.seconds / args.interval)))
    print(
        f"\n{args.clients} client processes, gunicorn {args.workers} sync workers, "
        f"SERVING_ACTIVITY_MAX_ENTRIES={args.max_entries}; per interval of {args.interval:.0f} s:"
    )
    pids = sorted(rss)
    print(
        "| interval | requests | req/s | p50 ms | p99 ms | recs p50 | recs p99 | errors | "
        + " | ".join(f"worker {i + 1} RSS MiB" for i in range(len(pids)))
        + " |"
    )
    print("|---" * (8 + len(pids)) + "|")
    for i in range(n_intervals):
        lo, hi = i * args.interval, (i + 1) * args.interval
        part = [s for s in samples if lo <= s[0] < hi]
        lat = [s[2] * 1000 for s in part]
        recs = [s[2] * 1000 for s in part if s[1] == "recommendations"]
        errors = sum(1 for s in part if not s[3])
        worker_rss = []
        for pid in pids:
            inside = [kb for t, kb in rss[pid] if t < hi]
            worker_rss.append(f"{inside[-1] / 1024:.0f}" if inside else "-")
        print(
            f"| {i + 1} | {len(part)} | {len(part) / args.interval:.0f} | {percentile(lat, 50):.1f} | "
            f"{percentile(lat, 99):.1f} | {percentile(recs, 50):.1f} | {percentile(recs, 99):.1f} | {errors} | "
            + " | ".join(worker_rss)
            + " |"
        )
    kinds: dict[str, int] = {}
    for s in samples:
        kinds[s[1]] = kinds.get(s[1], 0) + 1
    total_errors = sum(1 for s in samples if not s[3])
    print(f"\nrequests per kind: {json.dumps(kinds)}; errors: {total_errors} (goal 0)")
    for i, pid in enumerate(pids):
        after = [(t, kb) for t, kb in rss[pid] if t >= args.interval]
        print(
            f"worker {i + 1} (pid {pid}): RSS {rss[pid][0][1] / 1024:.0f} -> {rss[pid][-1][1] / 1024:.0f} MiB, "
            f"peak {status_kb(pid, 'VmHWM') / 1024 or max(kb for _, kb in rss[pid]) / 1024:.0f} MiB; slope after "
            f"the first interval {slope_mib_per_minute(after):+.2f} MiB/min"
        )
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
