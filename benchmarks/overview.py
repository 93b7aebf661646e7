"""The Overview (the page after login): served from its snapshot, computed, and a plain page, same run.

    .venv/bin/python benchmarks/overview.py [--events 300000 --customers 5000 --products 2000] [--rounds 15]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_overview .venv/bin/python benchmarks/overview.py

Without ``DATABASE_URL`` it works in a throw-away SQLite database of its own (the embedded demo's
engine); with it, on that PostgreSQL database (created if missing, its tables dropped and migrated
first: use a database of its own). It seeds a store with ``seed_demo_store`` (the demo's sizes by
default), logs a merchant in, and then for each Overview period times, through Django's test client
(full middleware and view stack, no socket), the median and p90 wall time of:

* **snapshot**: ``/s/<store>/?period=P`` as a deployment serves it (beat keeps the snapshot fresh);
* **computed**: the same request with the snapshot deleted first (what every request did before
  snapshots, and what the first request after a big import does);
* **plain page**: Settings → API keys of the same store, a page with a couple of small queries, as the
  peer a landing page should be compared with.

The issue's goal is the snapshot row under 300 ms for every period on the demo store.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _configure(workdir: Path) -> None:
    if not os.environ.get("DATABASE_URL"):
        os.environ["SQLITE_PATH"] = str(workdir / "bench.sqlite3")
    for name in ("CELERY_BROKER_URL", "REDIS_URL"):
        os.environ.pop(name, None)
    os.environ["SHOP_RECS_VAR_DIR"] = str(workdir / "var")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("DEBUG", "1")  # the demo's settings (./dev demo); DEBUG adds no query log here
    os.environ["DJANGO_SETTINGS_MODULE"] = "shop_recs.settings"


def _setup(args: argparse.Namespace):
    import django
    from django.core.management import call_command

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection

    from shop_recs.imports.demo import DemoConfig, seed_demo_store
    from shop_recs.stores.models import Membership, Role, Store

    settings.DEBUG = False  # no per-query log kept in memory while timing
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    call_command("migrate", verbosity=0)
    store = Store.objects.create(name="Demo", slug="demo")
    t0 = time.perf_counter()
    seed_demo_store(store, DemoConfig(seed=42, customers=args.customers, products=args.products, events=args.events))
    print(f"seeded {args.events:,} events in {time.perf_counter() - t0:.1f} s ({connection.vendor})", flush=True)
    user = get_user_model().objects.create_user("bench", password="bench-123456!")
    Membership.objects.create(user=user, store=store, role=Role.MERCHANT)
    return store, user


def _time(client, url: str, rounds: int, before=None) -> tuple[float, float]:
    samples = []
    for _ in range(rounds):
        if before is not None:
            before()
        t0 = time.perf_counter()
        response = client.get(url)
        samples.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(0.9 * len(samples)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--products", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-overview-") as tmp:
        _configure(Path(tmp))
        store, user = _setup(args)
        from django.test import Client

        from shop_recs.dashboard import selectors
        from shop_recs.dashboard.models import OverviewSnapshot
        from shop_recs.stores.scoping import unscoped

        client = Client()
        client.force_login(user)
        plain_url = f"/s/{store.slug}/settings/keys/"
        client.get(plain_url)  # warm-up: imports, template loading, session

        def drop_snapshots() -> None:
            with unscoped():
                OverviewSnapshot.objects.filter(store=store).delete()

        print(f"\n{'period':<8} {'snapshot p50/p90 ms':>20} {'computed p50/p90 ms':>20} {'plain page p50/p90 ms':>22}")
        for period in selectors.PERIODS:
            url = f"/s/{store.slug}/?period={period}"
            client.get(url)  # warm-up, and the snapshot a deployment's beat would have made
            snap = _time(client, url, args.rounds)
            computed = _time(client, url, max(3, args.rounds // 3), before=drop_snapshots)
            client.get(url)
            plain = _time(client, plain_url, args.rounds)
            print(
                f"{period:<8} {snap[0]:>10.1f} / {snap[1]:<8.1f} {computed[0]:>10.1f} / {computed[1]:<8.1f}"
                f" {plain[0]:>11.1f} / {plain[1]:<8.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
