"""Ad-serving throughput under gunicorn, in the same run as a plain Django view.

    .venv/bin/python benchmarks/ads.py [--events 100000] [--campaigns 8] [--duration 10] [--reuse]

1. Seeds and trains the demo store in ``shop_recs_bench_ads`` with ``benchmarks/serve.py``'s setup
   (``--reuse`` keeps a previously seeded database), then (re)creates ``--campaigns`` active,
   untargeted campaigns on the store's largest categories with a budget large enough never to run
   out and a frequency cap of 1000 (so every request serves and writes an impression).
2. Starts gunicorn with 2 sync workers on PostgreSQL (``DEBUG=0``, BLAS 1 thread) and drives
   ``GET /healthz`` then ``GET /api/v1/ads?customer=<id>&slot=home&n=1`` (rotating known customers)
   with ``wrk`` (or the Python fallback), each after a warm-up. Every ads request ranks with the
   active model and records one impression (two conditional UPDATEs, one INSERT ... ON CONFLICT,
   one INSERT, one COMMIT).

It prints a table; it is not a test and asserts nothing about timings.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PY = sys.executable

from benchmarks.ingest import free_port, wait_for  # noqa: E402
from benchmarks.serve import run_python, run_wrk, setup_store  # noqa: E402

CAMPAIGNS = """
import django
django.setup()
from datetime import timedelta
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
            budget=100_000_000, frequency_cap=1000, weight=1.0 + i / 10, status="active")
        c.categories.set([cat])
print("campaigns", len(cats))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--products", type=int, default=2_000)
    parser.add_argument("--campaigns", type=int, default=8)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--db", default="shop_recs_bench_ads")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/5")
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--python-client", action="store_true")
    args = parser.parse_args()
    env = {
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
    info = setup_store(args, env)
    if args.reuse:  # an older seeded database may predate the ads tables
        subprocess.run([PY, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    out = subprocess.run(
        [PY, "-c", CAMPAIGNS.format(n=args.campaigns)], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    print(out.stdout.strip(), f"| store: {info['events']:,} events, model {info['active_algorithm']}")
    paths = {
        "plain": ["/healthz"],
        "ads": [f"/api/v1/ads?customer={quote(c)}&slot=home&n=1" for c in info["customers"]],
    }
    use_wrk = shutil.which("wrk") is not None and not args.python_client
    load = run_wrk if use_wrk else run_python
    port = free_port()
    gunicorn = subprocess.Popen(
        [str(Path(PY).parent / "gunicorn"), "shop_recs.wsgi", "-w", str(args.workers), "-k", "sync"]
        + ["-b", f"127.0.0.1:{port}", "--timeout", "120", "--log-level", "warning", "--backlog", "256"],
        cwd=ROOT,
        env=env,
    )
    results = {}
    try:
        wait_for(port, gunicorn)
        for name in ("plain", "ads"):
            key = "" if name == "plain" else info["key"]
            load(port, key, paths[name], args.warmup, args.connections, args.threads)
            results[name] = load(port, key, paths[name], args.duration, args.connections, args.threads)
    finally:
        gunicorn.terminate()
        gunicorn.wait(timeout=30)
    base = results["plain"]["rps"] or float("nan")
    print(
        f"\ngunicorn {args.workers} sync workers, {'wrk' if use_wrk else 'python'} client, "
        f"{args.connections} connections x {args.duration:.0f} s, {len(info['customers'])} rotating customers"
    )
    print("| endpoint | req/s | p50 ms | p99 ms | vs plain | errors |")
    print("|---|---:|---:|---:|---:|---:|")
    labels = {"plain": "GET /healthz (plain Django)", "ads": "GET /api/v1/ads (serve + record)"}
    for name, res in results.items():
        print(
            f"| {labels[name]} | {res['rps']:.0f} | {res['p50_ms']:.2f} | {res['p99_ms']:.2f} | "
            f"{res['rps'] / base:.0%} | {res['errors']} |"
        )


if __name__ == "__main__":
    main()
