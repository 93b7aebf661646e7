"""Profile + segmentation time and peak memory.

Usage (Postgres recommended)::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/shop_recs_bench_profiles \
        .venv/bin/python benchmarks/profiles.py --customers 200000 --events 1000000
    # the demo store (python manage.py seed_demo data):
    .venv/bin/python benchmarks/profiles.py --demo
    # any existing store, e.g. the UCI Online Retail import:
    .venv/bin/python manage.py import_uci --store uci && .venv/bin/python benchmarks/profiles.py --store uci

Generated data: numpy, written with ``shop_recs.activity.ingest.write_events`` (COPY on Postgres).
Peak memory is the process's max RSS (``resource.getrusage``) measured before and after each step.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop_recs.settings")
# A developer's machine, as measured before DEBUG became off by default (no SECRET_KEY needed).
os.environ.setdefault("DEBUG", "1")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from django.core.management import call_command  # noqa: E402

from analytics.segments import build_auto_segments  # noqa: E402
from analytics.services import build_profiles  # noqa: E402
from shop_recs.stores.models import Store  # noqa: E402
from shop_recs.stores.scoping import unscoped  # noqa: E402


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def generate(store: Store, n_customers: int, n_events: int, seed: int = 0) -> None:
    from shop_recs.activity.ingest import ensure_customers, write_events
    from shop_recs.catalog.models import Category, Product

    rng = np.random.default_rng(seed)
    with unscoped():
        cats = [Category.objects.create(store=store, name=f"Cat {i}", path=f"Cat {i}") for i in range(20)]
        prods = Product.objects.bulk_create(
            [
                Product(
                    store=store,
                    sku=f"P{i}",
                    title=f"P{i}",
                    category=cats[i % 20],
                    brand=f"B{i % 50}",
                    price=round(float(rng.lognormal(3, 0.6)), 2),
                )
                for i in range(2_000)
            ]
        )
    pmap = ensure_customers(store.id, [f"U{i}" for i in range(n_customers)])
    cust = np.array([pmap[f"U{i}"] for i in range(n_customers)], dtype=np.int64)
    prod = np.array([p.pk for p in prods], dtype=np.int64)
    prices = np.array([float(p.price) for p in prods])
    end = datetime.now(UTC)
    types = np.array(["view", "click", "add_to_cart", "purchase"])
    chunk = 250_000
    for start in range(0, n_events, chunk):
        n = min(chunk, n_events - start)
        c = cust[rng.zipf(1.6, n) % n_customers]
        p = rng.integers(0, len(prod), n)
        t = rng.choice(4, n, p=[0.75, 0.1, 0.1, 0.05])
        ts = [end - timedelta(seconds=float(s)) for s in rng.uniform(0, 180 * 86400, n)]
        rows = (
            (
                int(c[i]),
                "",
                types[t[i]],
                int(prod[p[i]]),
                float(prices[p[i]]) if t[i] == 3 else None,
                1 if t[i] == 3 else None,
                f"o{start + i}" if t[i] == 3 else "",
                "",
                ts[i],
                None,
            )
            for i in range(n)
        )
        write_events(store.id, rows)


def analyze_tables() -> None:
    """Fresh planner statistics, as autovacuum keeps them on a live database. Right after a bulk
    COPY the planner still estimates ~2k rows per store and picks an index scan over millions of
    events for the readers' time filter: 67 s instead of 1.8 s for one count here."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("ANALYZE activity_event")
            cur.execute("ANALYZE analytics_customerprofile")


def raw_copy_peer(store: Store) -> dict[str, float]:
    """The peer in the same run: raw ``COPY`` of the same rows with no parsing or profile work.

    Out: the profile read's event columns to a buffer. In: the store's saved profile rows (copied
    out first, not timed) into a fresh temporary table, without the upsert.
    """
    from django.db import connection, transaction

    if connection.vendor != "postgresql":
        return {}
    out: dict[str, float] = {}
    with transaction.atomic(), connection.connection.cursor() as cur:
        t = time.perf_counter()
        n_bytes = 0
        query = (
            "COPY (SELECT id, customer_id, event_type, product_id, value, quantity, order_id, "
            'extract(epoch FROM "timestamp") FROM activity_event WHERE store_id = %s AND customer_id IS NOT NULL) '
            "TO STDOUT"
        )
        with cur.copy(query, (store.pk,)) as copy:
            for chunk in copy:
                n_bytes += len(chunk)
        out["raw_copy_out_events_s"] = round(time.perf_counter() - t, 1)
        buf = bytearray()
        with cur.copy(
            "COPY (SELECT * FROM analytics_customerprofile WHERE store_id = %s) TO STDOUT", (store.pk,)
        ) as copy:
            for chunk in copy:
                buf += chunk
        cur.execute("CREATE TEMPORARY TABLE bench_profiles_peer (LIKE analytics_customerprofile) ON COMMIT DROP")
        t = time.perf_counter()
        with cur.copy("COPY bench_profiles_peer FROM STDIN") as copy:
            copy.write(bytes(buf))
        out["raw_copy_in_profiles_s"] = round(time.perf_counter() - t, 1)
    return out


def bench(store: Store) -> dict[str, float]:
    out: dict[str, float] = {}
    t = time.perf_counter()
    run = build_profiles(store, "full", segment=False)
    out["profiles_s"] = round(time.perf_counter() - t, 1)
    out["profiles_timings"] = run.timings
    out["rss_after_profiles_mb"] = round(rss_mb())
    t = time.perf_counter()
    segs = build_auto_segments(store)
    out["segments_s"] = round(time.perf_counter() - t, 1)
    out["k"] = len(segs)
    out["rss_after_segments_mb"] = round(rss_mb())
    out["customers"] = run.n_customers
    out["events"] = run.n_events
    out.update(raw_copy_peer(store))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=200_000)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--demo", action="store_true", help="benchmark the seed_demo store instead")
    ap.add_argument("--store", default="", help="benchmark an existing store by slug (e.g. one made by import_uci)")
    ap.add_argument("--slug", default="bench-profiles")
    args = ap.parse_args()
    call_command("migrate", verbosity=0)
    if args.store:
        store = Store.objects.get(slug=args.store)
    elif args.demo:
        store = Store.objects.filter(slug="demo").first()
        if store is None:
            call_command("seed_demo", verbosity=0)
            store = Store.objects.get(slug="demo")
    else:
        store = Store.objects.filter(slug=args.slug).first()
        if store is None:
            store = Store.objects.create(name=args.slug, slug=args.slug)
            t = time.perf_counter()
            generate(store, args.customers, args.events)
            print(f"generated in {time.perf_counter() - t:.1f}s", flush=True)
    analyze_tables()
    print(f"rss before: {rss_mb():.0f} MB", flush=True)
    print(bench(store), flush=True)


if __name__ == "__main__":
    main()
