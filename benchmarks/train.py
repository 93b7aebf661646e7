"""End-to-end training time, "train clicked -> active model", by stage, plus peak memory.

    .venv/bin/python benchmarks/train.py [--events 5000000] [--skip-demo] [--skip-large]
    .venv/bin/python benchmarks/train.py --skip-demo --events 1000000,5000000,20000000   # capacity curve

In one run, against a database it (re)creates (``shop_recs_bench_train``):

1. **Demo store**: ``seed_demo_store`` with the default sizes (300k events, 5k customers, 2k products).
2. **Large stores**: one per size in ``--events`` (comma-separated, each 10,000..20,000,000; default
   5M), over ``--customers`` customers (default: one per 25 events, the 5M / 200k ratio of the
   earlier runs) and ``--products`` products (default 20k), generated with numpy (Zipf-like product
   popularity, per-customer activity skew, event mix 70% view / 15% click / 10% add_to_cart / 5%
   purchase, 180 days) and written with ``shop_recs.activity.ingest.write_events`` (binary COPY),
   then ``ANALYZE``. Sizes run smallest first, so a size that runs out of memory or time still
   leaves the figures of the smaller ones (printed as each finishes).

Memory for generating: about 60 bytes per event in numpy arrays (1.2 GB at 20M) in this process,
besides PostgreSQL's own; the training process of each size is separate (see below). Do not run
20M on a shared machine: the event table alone takes ~240 bytes per event with its indexes
(~4.8 GB at 20M; docs/deployment.md, "Capacity").

For each store, a fresh Python process (so its peak RSS is the training's alone) does what the
dashboard's "Train" button does minus the Celery hop: ``start_training`` (the run row, status
queued) then ``run_training`` (read events -> matrices -> fit -> evaluate -> artifact -> gate ->
activate), with the default algorithms. It reports the wall time from the click to the version being
active, the per-stage timings the service records in ``TrainingRun.timings``, and the process's
peak RSS (``VmHWM``). Celery's own latency (enqueue -> a worker picks it up) is not included: on
an idle worker it is milliseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PY = sys.executable

from benchmarks.ingest import recreate_database  # noqa: E402


def _django(env: dict[str, str]) -> None:
    os.environ.update(env)
    import django

    django.setup()


def generate_large(store_id: int, n_events: int, n_customers: int, n_products: int, seed: int = 5) -> dict:
    """numpy-generated events written with ``write_events`` in chunks of 500k rows (one COPY each)."""
    import numpy as np
    from django.db import connection, transaction

    from shop_recs.activity.ingest import ensure_customers, product_ids_by_sku, write_events
    from shop_recs.catalog.services import upsert_products

    rng = np.random.default_rng(seed)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    from shop_recs.stores.models import Store

    store = Store.objects.get(pk=store_id)
    n_cat = 50
    words = ["mug", "shirt", "lamp", "chair", "vase", "candle", "towel", "plate", "bowl", "jacket", "shoe", "bag"]
    adjs = ["blue", "red", "linen", "cotton", "ceramic", "oak", "glass", "wool", "small", "large", "classic"]
    rows = [
        {
            "sku": f"P{i}",
            "title": f"{adjs[i % len(adjs)]} {words[(i // 7) % len(words)]} {i}",
            "price": float(5 + (i * 37) % 200),
            "category": f"Dept {(i % n_cat) // 10} > Cat {i % n_cat}",
        }
        for i in range(n_products)
    ]
    with transaction.atomic():
        for i in range(0, n_products, 1000):
            upsert_products(store, rows[i : i + 1000])
    sku_pk = product_ids_by_sku(store_id, [r["sku"] for r in rows])
    prod_pk = np.array([sku_pk[f"P{i}"] for i in range(n_products)], dtype=np.int64)
    cust_map = ensure_customers(store_id, [f"C{i}" for i in range(n_customers)])
    cust_pk = np.array([cust_map[f"C{i}"] for i in range(n_customers)], dtype=np.int64)
    timings["catalog_and_customers"] = round(time.perf_counter() - t0, 1)

    t0 = time.perf_counter()
    # Zipf-like product popularity; customers' activity is log-normal (a few heavy users).
    prod_w = 1.0 / np.arange(1, n_products + 1) ** 0.9
    prod_w = rng.permutation(prod_w / prod_w.sum())
    cust_w = rng.lognormal(0.0, 1.0, n_customers)
    cust_w /= cust_w.sum()
    cust = rng.choice(n_customers, size=n_events, p=cust_w)
    prod = rng.choice(n_products, size=n_events, p=prod_w)
    # Customers stick to a few categories: move ~half the events into the customer's home category.
    home = rng.integers(0, n_cat, n_customers)
    stick = rng.random(n_events) < 0.5
    prod[stick] = (prod[stick] // n_cat) * n_cat + home[cust[stick]]
    prod = np.minimum(prod, n_products - 1)
    kinds = np.array(["view", "click", "add_to_cart", "purchase"])
    kind = rng.choice(4, size=n_events, p=[0.70, 0.15, 0.10, 0.05])
    end = datetime.now(UTC).replace(microsecond=0)
    secs = np.sort(rng.integers(0, 180 * 86400, n_events))
    timings["generate"] = round(time.perf_counter() - t0, 1)

    t0 = time.perf_counter()
    start = end - timedelta(days=180)
    chunk = 500_000
    written = 0
    for lo in range(0, n_events, chunk):
        hi = min(n_events, lo + chunk)
        c_pk = cust_pk[cust[lo:hi]].tolist()
        p_pk = prod_pk[prod[lo:hi]].tolist()
        k = kinds[kind[lo:hi]].tolist()
        s = secs[lo:hi].tolist()
        batch = (
            (c, None, e, p, None, 1 if e == "purchase" else None, f"o{lo + j}" if e == "purchase" else None, None,
             start + timedelta(seconds=t), None)
            for j, (c, p, e, t) in enumerate(zip(c_pk, p_pk, k, s, strict=True))
        )  # fmt: skip
        with transaction.atomic():
            written += write_events(store_id, batch)
        print(f"  wrote {written:,} / {n_events:,} events ({time.perf_counter() - t0:.0f} s)", flush=True)
    timings["write_events_copy"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute("ANALYZE activity_event")
        cur.execute("ANALYZE activity_customer")
    timings["analyze"] = round(time.perf_counter() - t0, 1)
    return {"events": written, "customers": n_customers, "products": n_products, "timings": timings}


def _hwm_kib() -> int:
    """This process's peak RSS (``VmHWM``). Not ``ru_maxrss``: Linux carries that across ``exec``,
    so a child would report its parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def train_once(store_id: int) -> dict:
    """In this (fresh) process: click -> active, stage timings, peak RSS."""
    from shop_recs.stores.models import Store
    from shop_recs.stores.scoping import store_scope
    from shop_recs.training.models import ModelVersion
    from shop_recs.training.services import DEFAULT_ALGORITHMS, run_training, start_training

    store = Store.objects.get(pk=store_id)
    rss_before = _hwm_kib()
    t0 = time.perf_counter()
    run = start_training(store, DEFAULT_ALGORITHMS, {"_gate": {"force": True}}, None, enqueue=False)
    t_queued = time.perf_counter() - t0
    run = run_training(run.pk)
    total = time.perf_counter() - t0
    with store_scope(store):
        active = ModelVersion.objects.filter(is_active=True).first()
    return {
        "status": run.status,
        "error": (run.error or "").splitlines()[0] if run.error else "",
        "click_to_active_s": round(total, 2),
        "start_training_s": round(t_queued, 3),
        "timings": run.timings,
        "active_version": active.pk if active else None,
        "active_algorithm": active.algorithm if active else None,
        "active_is_this_run": bool(active and active.run_id == run.pk),
        "peak_rss_mib": round(_hwm_kib() / 1024, 0),
        "rss_before_training_mib": round(rss_before / 1024, 0),
    }


#: Store sizes the script accepts (events): up to 20M, the size the capacity table in
#: docs/deployment.md plans for before a store needs the distributed backend.
EVENTS_MIN, EVENTS_MAX = 10_000, 20_000_000
EVENTS_PER_CUSTOMER = 25


def event_sizes(raw: str) -> list[int]:
    """``--events``: comma-separated sizes (``1000000,5000000`` or ``1e6,5e6``), smallest first."""
    sizes = []
    for part in raw.split(","):
        text = part.strip().replace("_", "")
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part.strip()!r} is not a number of events") from None
        if not value.is_integer() or not EVENTS_MIN <= value <= EVENTS_MAX:
            raise argparse.ArgumentTypeError(
                f"{part.strip()!r} must be a whole number from {EVENTS_MIN:,} to {EVENTS_MAX:,}"
            )
        sizes.append(int(value))
    return sorted(set(sizes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=event_sizes, default=[5_000_000], help="sizes, comma-separated")
    parser.add_argument("--customers", type=int, default=0, help=f"default: events / {EVENTS_PER_CUSTOMER}")
    parser.add_argument("--products", type=int, default=20_000)
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--db", default="shop_recs_bench_train")
    parser.add_argument("--skip-demo", action="store_true")
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--_train", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()

    env = {
        "DATABASE_URL": f"{args.server}/{args.db}",
        "DJANGO_SETTINGS_MODULE": "shop_recs.settings",
        "DEBUG": "0",
        "SECRET_KEY": "bench-train-not-secret-" + "x" * 40,
        "LOG_LEVEL": "WARNING",
    }
    if args._train:
        _django(env)
        print("BENCH_TRAIN " + json.dumps(train_once(args._train)), flush=True)
        return

    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    recreate_database(args.server, args.db)
    subprocess.run([PY, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env={**os.environ, **env}, check=True)
    _django(env)
    from shop_recs.imports.demo import DemoConfig, seed_demo_store
    from shop_recs.stores.models import Store

    def train_in_subprocess(store_id: int) -> dict:
        out = subprocess.run(
            [PY, __file__, "--db", args.db, "--server", args.server, "--_train", str(store_id)],
            cwd=ROOT,
            env={**os.environ, **env},
            check=True,
            capture_output=True,
            text=True,
        )
        line = next(ln for ln in out.stdout.splitlines() if ln.startswith("BENCH_TRAIN "))
        return json.loads(line[len("BENCH_TRAIN ") :])

    results = []
    if not args.skip_demo:
        store = Store.objects.create(name="Bench demo", slug="bench-demo")
        t0 = time.perf_counter()
        seeded = seed_demo_store(store, DemoConfig())
        from django.db import connection

        with connection.cursor() as cur:
            cur.execute("ANALYZE")
        print(f"demo store seeded: {seeded.events:,} events in {time.perf_counter() - t0:.1f} s", flush=True)
        res = train_in_subprocess(store.pk)
        res["store"] = f"demo ({seeded.events:,} events, {seeded.customers:,} customers, {seeded.products:,} products)"
        print(json.dumps(res, indent=1), flush=True)
        results.append(res)
    for n_events in [] if args.skip_large else args.events:
        n_customers = args.customers or max(1, n_events // EVENTS_PER_CUSTOMER)
        store = Store.objects.create(name=f"Bench {n_events:,} events", slug=f"bench-large-{n_events}")
        print(f"generating {n_events:,} events ...", flush=True)
        t0 = time.perf_counter()
        gen = generate_large(store.pk, n_events, n_customers, args.products)
        print(f"generated + written in {time.perf_counter() - t0:.0f} s: {gen['timings']}", flush=True)
        try:
            res = train_in_subprocess(store.pk)
        except subprocess.CalledProcessError as exc:
            # Out of memory (SIGKILL: -9) or an error: the larger sizes would fail too; keep the table.
            print(f"training {n_events:,} events failed with exit code {exc.returncode}: {exc.stderr[-2000:]}")
            break
        res["store"] = (
            f"generated ({gen['events']:,} events, {gen['customers']:,} customers, {gen['products']:,} products)"
        )
        res["write"] = gen["timings"]
        print(json.dumps(res, indent=1), flush=True)
        results.append(res)

    print()
    print("| store | click -> active (s) | stages (s) | peak RSS (MiB) | active |")
    print("|---|---|---|---|---|")
    for r in results:
        stages = ", ".join(f"{k} {v:.1f}" for k, v in r["timings"].items())
        active = "(this run)" if r["active_is_this_run"] else f"(NOT this run: {r['status']})"
        print(
            f"| {r['store']} | {r['click_to_active_s']:.1f} | {stages} | {r['peak_rss_mib']:.0f} | "
            f"{r['active_algorithm']} {active} |"
        )
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
