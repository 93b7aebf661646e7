"""Embedded mode (SQLite, no broker): how long the dashboard's start buttons hold the request.

    .venv/bin/python benchmarks/embedded_jobs.py [--events 300000 --customers 5000 --products 2000]

In a throw-away SQLite database and var directory of its own (never ``db.sqlite3``), it seeds the
demo store with ``seed_demo_store`` (the demo's sizes by default), logs a merchant in, then posts
"Start training", "Update profiles" and "Start evaluation" the way the dashboard does, in two modes:

* **before**: no background pool, so Celery's eager mode runs the job inside the request (what every
  embedded page did before ``shop_recs.platform.executor``, and still what ``JOB_EXECUTOR_THREADS=0``
  does);
* **after**: the web process's pool (``jobs.start_background_jobs``, as a real server's first request
  starts it): the job starts once the response is sent.

After one unreported warm-up round (imports, cold caches), for each it prints the request's wall
time, the time until the job row is finished, and in the "after" mode how many distinct
(stage, progress) states a poller reading the row every 0.2 s saw while the job ran (the live
progress the page shows). One job runs at a time; each action runs in both modes back to back.
The request goes through Django's test client (the full middleware and view stack, no socket).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _configure(workdir: Path) -> None:
    """Embedded settings in ``workdir`` (set before Django reads the environment)."""
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "CELERY_TASK_ALWAYS_EAGER"):
        os.environ.pop(name, None)
    os.environ["SQLITE_PATH"] = str(workdir / "bench.sqlite3")
    os.environ["SHOP_RECS_VAR_DIR"] = str(workdir / "var")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    # The embedded demo's settings, as measured before DEBUG became off by default (./dev demo sets it).
    os.environ.setdefault("DEBUG", "1")
    os.environ["DJANGO_SETTINGS_MODULE"] = "shop_recs.settings"


def _setup(args: argparse.Namespace):
    import django
    from django.core.management import call_command

    django.setup()
    from django.contrib.auth import get_user_model

    from shop_recs.imports.demo import DemoConfig, seed_demo_store
    from shop_recs.stores.models import Membership, Role, Store

    call_command("migrate", verbosity=0)
    store = Store.objects.create(name="Demo", slug="demo")
    t0 = time.perf_counter()
    seed_demo_store(store, DemoConfig(seed=42, customers=args.customers, products=args.products, events=args.events))
    print(f"seeded {args.events:,} events in {time.perf_counter() - t0:.1f} s", flush=True)
    user = get_user_model().objects.create_user("bench", password="bench-123456!")
    Membership.objects.create(user=user, store=store, role=Role.MERCHANT)
    return store, user


def _jobs(store):
    """(name, URL, form data, job model) of the three buttons the issue measured."""
    from django.urls import reverse

    from analytics.evaluation.models import EvaluationRun
    from analytics.models import ProfileRun
    from shop_recs.training.config import training_config
    from shop_recs.training.models import TrainingRun

    slug = {"store_slug": store.slug}
    algorithms, _params = training_config(store)
    evaluation = {
        "eval-algorithms": ["popularity", "item_knn"],
        "eval-protocol": "temporal",
        "eval-test_days": "7",
        "eval-test_fraction": "0.2",
        "eval-ks": "5, 10, 20",
    }
    return [
        ("Start training", reverse("recommend:start", kwargs=slug), {"algorithms": algorithms}, TrainingRun),
        ("Update profiles", reverse("analytics:start_run", kwargs=slug), {"mode": "full"}, ProfileRun),
        ("Start evaluation", reverse("evaluation:start_run", kwargs=slug), evaluation, EvaluationRun),
    ]


def _measure(client, store, url: str, data: dict, model) -> tuple[float, float, int, str]:
    """Request seconds, seconds until the new row finished, distinct progress states seen, final status."""
    before = set(model.all_stores.filter(store=store).values_list("pk", flat=True))
    t0 = time.perf_counter()
    resp = client.post(url, data)
    request_s = time.perf_counter() - t0
    if resp.status_code not in (200, 302):
        raise SystemExit(f"{url}: HTTP {resp.status_code}")
    row = model.all_stores.filter(store=store).exclude(pk__in=before).order_by("-pk").first()
    if row is None:
        raise SystemExit(f"{url}: no job row was created (HTTP {resp.status_code})")
    states = set()
    while not row.is_finished:
        states.add((row.stage, row.progress))
        time.sleep(0.2)
        row.refresh_from_db()
    slowest = sorted((row.timings or {}).items(), key=lambda kv: -kv[1])[:3]
    print("       slowest stages:", ", ".join(f"{k} {v:.1f} s" for k, v in slowest), flush=True)
    return request_s, time.perf_counter() - t0, len(states), row.status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--products", type=int, default=2_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="embedded-jobs-") as tmp:
        _configure(Path(tmp))
        store, user = _setup(args)
        from django.test import Client

        from shop_recs.platform import executor, jobs

        client = Client()
        client.force_login(user)
        # Warm-up, not reported: the first run of each job pays for imports and cold caches.
        for _name, url, data, model in _jobs(store):
            _measure(client, store, url, data, model)
        results = []
        # Each action in both modes back to back, so a busy machine's drift hits both alike.
        for name, url, data, model in _jobs(store):
            for mode in ("before", "after"):
                if mode == "after":
                    assert jobs.start_background_jobs() is not None, "the pool did not start (a broker is set?)"
                request_s, done_s, states, status = _measure(client, store, url, data, model)
                executor.stop(wait=True)
                results.append((name, mode, request_s, done_s, states, status))
                print(f"{mode:6} {name:17} request {request_s:7.3f} s  finished {done_s:7.2f} s  {status}", flush=True)

    print()
    print(
        "| action | request, jobs in the request (before) | request, background pool (after) "
        "| job finished (after) | progress states seen (after) |"
    )
    print("|---|---:|---:|---:|---:|")
    by = {(n, m): (r, d, s, st) for n, m, r, d, s, st in results}
    for name in dict.fromkeys(n for n, *_ in results):
        b, a = by[(name, "before")], by[(name, "after")]
        print(f"| {name} | {b[0]:.2f} s | {a[0]:.3f} s | {a[1]:.1f} s ({a[3]}) | {a[2]} |")


if __name__ == "__main__":
    main()
