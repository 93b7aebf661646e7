"""What Prometheus metrics and the API rate limiter cost on the serving hot path (issue #16).

    .venv/bin/python benchmarks/serve_overhead.py [--reuse] [--rounds 5] [--duration 5] [--only search]

Same store, paths, gunicorn and wrk set-up as ``benchmarks/serve.py`` (its functions are reused; see
there), but instead of a plain view this runs three gunicorn servers side by side and measures each
endpoint on all three, interleaved, ``--rounds`` times (and first, in one process, the CPU time per
request of the same three variants through Django's test client, ``--inprocess-requests``):

* ``off``: ``METRICS_ENABLED=0``, both rate limits 0 (neither middleware is loaded);
* ``metrics``: ``METRICS_ENABLED=1`` in multiprocess mode (gunicorn.conf.py gives the server its own
  ``PROMETHEUS_MULTIPROC_DIR``), ``/metrics`` scraped every 5 s by a thread as Prometheus would;
* ``metrics+limits``: the same plus ``API_RATE_LIMIT_PER_KEY`` and ``API_RATE_LIMIT_PER_IP`` at
  6,000,000 a minute (never reached: this measures the counting, Redis round trips included, not
  refusals; at that limit a lease is 100 requests, the most a lease ever is).

Each round measures the three servers one after the other in a rotating order, and each ratio
(``metrics`` / ``off``, ``metrics+limits`` / ``off``) is taken within its round, so a busier minute
on this shared machine moves both sides; the table shows the medians and the spread. The idle
servers use no CPU. It is a script, not a test: nothing asserts on timings.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.serve import bench_env, make_paths, run_python, run_wrk, setup_store, start_gunicorn  # noqa: E402

LIMIT = 6_000_000
VARIANTS = {
    "off": {"METRICS_ENABLED": "0", "API_RATE_LIMIT_PER_KEY": "0", "API_RATE_LIMIT_PER_IP": "0"},
    "metrics": {"METRICS_ENABLED": "1", "API_RATE_LIMIT_PER_KEY": "0", "API_RATE_LIMIT_PER_IP": "0"},
    "metrics+limits": {
        "METRICS_ENABLED": "1",
        "API_RATE_LIMIT_PER_KEY": str(LIMIT),
        "API_RATE_LIMIT_PER_IP": str(LIMIT),
    },
}


def scraper(port: int, stop: threading.Event, out: list[int]) -> None:
    """GET /metrics every 5 s (Prometheus's usual 15 s, made busier); records each body's size."""
    while not stop.wait(5.0):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/metrics")
            resp = conn.getresponse()
            body = resp.read()
            conn.close()
            out.append(len(body) if resp.status == 200 else -resp.status)
        except OSError:
            out.append(-1)


def inprocess_child(info_file: str, requests: int, rounds: int) -> None:
    """In one process: CPU seconds per request (``time.process_time``) of the three variants through
    Django's test client (its own handler per variant, so ``MiddlewareNotUsed`` applies), interleaved
    in rounds. CPU time, unlike throughput, hardly moves with the other load on the machine."""
    import json

    import django

    django.setup()
    from django.test import Client, override_settings

    info = json.loads(Path(info_file).read_text())
    paths = make_paths(info)
    settings_of = {
        v: {
            "METRICS_ENABLED": e["METRICS_ENABLED"] == "1",
            "API_RATE_LIMIT_PER_KEY": int(e["API_RATE_LIMIT_PER_KEY"]),
            "API_RATE_LIMIT_PER_IP": int(e["API_RATE_LIMIT_PER_IP"]),
        }
        for v, e in VARIANTS.items()
    }
    clients = {v: Client(HTTP_AUTHORIZATION=f"Bearer {info['key']}") for v in VARIANTS}
    out: dict[str, dict[str, list[float]]] = {}
    for name in ("recommendations", "similar", "search"):
        rotation = paths[name]
        for variant, client in clients.items():  # warm-up: every rotated path once per variant
            with override_settings(**settings_of[variant]):
                for path in rotation[: min(len(rotation), 2 * requests)]:
                    assert client.get(path).status_code == 200
        for r in range(rounds):
            order = list(VARIANTS)[r % 3 :] + list(VARIANTS)[: r % 3]
            for variant in order:
                with override_settings(**settings_of[variant]):
                    client = clients[variant]
                    t0 = time.process_time()
                    for i in range(requests):
                        client.get(rotation[(r * requests + i) % len(rotation)])
                    out.setdefault(name, {}).setdefault(variant, []).append((time.process_time() - t0) / requests)
    print("INPROCESS " + json.dumps(out))


def micro_child(info_file: str, n: int, blocks: int) -> None:
    """The added code alone, per request, CPU µs (minimum over ``blocks`` blocks of ``n`` requests: the
    minimum is what the code costs when nothing else on the machine interferes).

    * ``metrics``: :class:`MetricsMiddleware` around a view that returns at once, plus the four
      serving-cache counters a recommendation request makes, minus the bare view call;
    * ``limits``: :class:`RateLimitMiddleware` (address and key limits at 6,000,000 a minute, Redis
      leases) minus the header read and key check it performs, which the view then finds done (the
      request's memo and its cached ``headers``) instead of doing them itself.
    """
    import json

    import django

    django.setup()
    from django.http import HttpResponse
    from django.test import RequestFactory, override_settings
    from django.urls import resolve

    from shop_recs.api import auth
    from shop_recs.api.ratelimit import RateLimitMiddleware
    from shop_recs.platform import metrics
    from shop_recs.platform.metrics import MetricsMiddleware

    info = json.loads(Path(info_file).read_text())
    key_reader = auth.ApiKeyAuthentication()
    path = make_paths(info)["recommendations"][0]
    factory = RequestFactory()
    response = HttpResponse(b"{}")

    def view(request):
        return response

    def with_counters(request):
        for cache in ("api_key", "active_version", "catalog_snapshot", "live_activity"):
            metrics.cache_lookup(cache, True)
        return response

    def requests() -> list:
        out = []
        for _ in range(n):
            request = factory.get(path, HTTP_AUTHORIZATION=f"Bearer {info['key']}")
            request.resolver_match = resolve(request.path_info)
            out.append(request)
        return out

    def cpu(fn) -> float:
        best = float("inf")
        for _ in range(blocks):
            batch = requests()
            t0 = time.process_time()
            for request in batch:
                fn(request)
            best = min(best, (time.process_time() - t0) / n)
        return best * 1e6

    with override_settings(METRICS_ENABLED=True, API_RATE_LIMIT_PER_KEY=LIMIT, API_RATE_LIMIT_PER_IP=LIMIT):
        metrics_mw = MetricsMiddleware(with_counters)
        limits_mw = RateLimitMiddleware(view)
        for fn in (view, metrics_mw, limits_mw):  # warm-up: key cache, leases, label children, files
            cpu(fn)
        out = {
            "bare view": cpu(view),
            "metrics middleware + 4 cache counters": cpu(metrics_mw),
            "rate limit middleware": cpu(limits_mw),
            # What the view does when the limiter has not: read the header (DRF parses every header into
            # request.headers, cached on the request) and check the key; with the limiter it finds both done.
            "key check (saved by the memo)": cpu(lambda r: auth.request_key_check(r, key_reader._raw_key(r))),
        }
    print("MICRO " + json.dumps(out))


def report_micro(out: dict, n: int, blocks: int) -> None:
    bare, key = out["bare view"], out["key check (saved by the memo)"]
    metrics_cost = out["metrics middleware + 4 cache counters"] - bare
    limits_cost = out["rate limit middleware"] - bare - key
    print(f"\nthe added code alone, CPU µs per request (minimum of {blocks} blocks of {n} requests):")
    for name, value in out.items():
        print(f"  {name:40s} {value:7.2f}")
    print(f"  => metrics {metrics_cost:.2f} µs, rate limits {limits_cost:.2f} µs per request")


def report_inprocess(out: dict, requests: int, rounds: int) -> None:
    median = statistics.median
    print(
        f"\nin process (Django test client, one thread), CPU time per request: {rounds} rounds x {requests} "
        "requests per variant, rotating order; medians; the overhead is the difference to 'off' within a round"
    )
    print("| endpoint | off µs | metrics µs | + µs (% of off) | metrics+limits µs | + µs (% of off) |")
    print("|---|---:|---:|---|---:|---|")
    for name, by in out.items():
        off = by["off"]
        cells = [name, f"{median(off) * 1e6:.0f}"]
        for variant in ("metrics", "metrics+limits"):
            diffs = [(on - base) * 1e6 for on, base in zip(by[variant], off, strict=True)]
            pct = [(on - base) / base for on, base in zip(by[variant], off, strict=True)]
            cells.append(f"{median(by[variant]) * 1e6:.0f}")
            cells.append(f"**{median(diffs):+.1f}** ({median(pct):+.1%}; rounds {min(pct):+.1%} to {max(pct):+.1%})")
        print("| " + " | ".join(cells) + " |")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--inprocess-child":
        inprocess_child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--micro-child":
        micro_child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--products", type=int, default=2_000)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--recs-warmup", type=float, default=12.0)
    parser.add_argument("--connections", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--db", default="shop_recs_bench_serve")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/5")
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--only", default="", help="comma-separated subset: recommendations,similar,search")
    parser.add_argument("--python-client", action="store_true")
    parser.add_argument("--inprocess-requests", type=int, default=2000, help="0: skip the in-process CPU measurement")
    parser.add_argument("--inprocess-rounds", type=int, default=5)
    parser.add_argument("--no-http", action="store_true", help="only the in-process CPU measurements")
    parser.add_argument("--micro", type=int, default=5000, help="requests per block of the added-code measurement")
    args = parser.parse_args()

    env = bench_env(args)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # each server gets its own from gunicorn.conf.py
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    info = setup_store(args, env)
    paths = make_paths(info)
    import json
    import subprocess
    import tempfile

    info_file = Path(tempfile.gettempdir()) / f"{args.db}.json"
    if args.micro > 0:
        with tempfile.TemporaryDirectory() as prom:
            child = subprocess.run(
                [sys.executable, __file__, "--micro-child", str(info_file), str(args.micro), "7"],
                env={**env, "PROMETHEUS_MULTIPROC_DIR": prom},
                cwd=ROOT,
                check=True,
                capture_output=True,
                text=True,
            )
        line = next(ln for ln in child.stdout.splitlines() if ln.startswith("MICRO "))
        report_micro(json.loads(line[len("MICRO ") :]), args.micro, 7)
    if args.inprocess_requests > 0:
        # The in-process run gets a multiprocess directory of its own, as under gunicorn.
        with tempfile.TemporaryDirectory() as prom:
            child = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--inprocess-child",
                    str(info_file),
                    str(args.inprocess_requests),
                    str(args.inprocess_rounds),
                ],
                env={**env, "PROMETHEUS_MULTIPROC_DIR": prom, "SERVING_GC_FREEZE_AFTER": "500"},
                cwd=ROOT,
                check=True,
                capture_output=True,
                text=True,
            )
        line = next(ln for ln in child.stdout.splitlines() if ln.startswith("INPROCESS "))
        report_inprocess(json.loads(line[len("INPROCESS ") :]), args.inprocess_requests, args.inprocess_rounds)
    if args.no_http:
        return
    use_wrk = shutil.which("wrk") is not None and not args.python_client
    load = run_wrk if use_wrk else run_python
    names = [n for n in ("recommendations", "similar", "search") if not args.only or n in args.only]

    servers: dict[str, tuple[int, object]] = {}
    stop = threading.Event()
    scrapes: list[int] = []
    results: dict[str, dict[str, list[dict]]] = {}
    try:
        for variant, extra in VARIANTS.items():
            servers[variant] = start_gunicorn({**env, **extra}, args.workers)
        threading.Thread(target=scraper, args=(servers["metrics"][0], stop, scrapes), daemon=True).start()
        threading.Thread(target=scraper, args=(servers["metrics+limits"][0], stop, scrapes), daemon=True).start()
        order = list(VARIANTS)
        for name in names:
            warm = args.recs_warmup if name == "recommendations" else args.warmup
            for variant in order:
                load(servers[variant][0], info["key"], paths[name], warm, args.connections, args.threads)
            for r in range(args.rounds):
                rotated = order[r % 3 :] + order[: r % 3]
                got = {}
                for variant in rotated:
                    port = servers[variant][0]
                    got[variant] = load(port, info["key"], paths[name], args.duration, args.connections, args.threads)
                    results.setdefault(name, {}).setdefault(variant, []).append(got[variant])
                print(
                    f"  {name:16s} round {r + 1}: "
                    + "  ".join(f"{v} {got[v]['rps']:6.0f} req/s (err {got[v]['errors']})" for v in order)
                    + f"  load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
    finally:
        stop.set()
        for _port, proc in servers.values():
            proc.terminate()  # type: ignore[attr-defined]
        for _port, proc in servers.values():
            proc.wait(timeout=30)  # type: ignore[attr-defined]

    median = statistics.median
    print()
    print(
        f"gunicorn {args.workers} sync workers per server, {'wrk' if use_wrk else 'python'} client "
        f"{args.connections} connections; {args.rounds} rounds of the three servers, {args.duration:.0f} s each, "
        f"rotating order; ratios within each round, medians (min-max)"
    )
    print(
        "| endpoint | off req/s | metrics req/s | metrics / off | metrics+limits req/s | +limits / off "
        "| p99 ms off / metrics / +limits |"
    )
    print("|---|---:|---:|---|---:|---|---|")
    for name, by in results.items():
        off = by["off"]
        cells = [name, f"{median([r['rps'] for r in off]):.0f}"]
        for variant in ("metrics", "metrics+limits"):
            ratios = [on["rps"] / base["rps"] for on, base in zip(by[variant], off, strict=True) if base["rps"]]
            ratios = ratios or [float("nan")]  # every 'off' side of a round served nothing: no ratio
            cells.append(f"{median([r['rps'] for r in by[variant]]):.0f}")
            cells.append(f"**{median(ratios):.1%}** ({min(ratios):.1%}-{max(ratios):.1%})")
        p99 = " / ".join(f"{median([r['p99_ms'] for r in by[v]]):.2f}" for v in VARIANTS)
        print("| " + " | ".join(cells) + f" | {p99} |")
    good = [s for s in scrapes if s > 0]
    print(f"\n/metrics scrapes during the run: {len(good)} ok of {len(scrapes)}, body {max(good, default=0)} bytes")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
