"""``manage.py simulate_traffic``: simulated shoppers against the serving API (and an experiment).

The shoppers click and buy by the demo's hidden tastes; the model of their behaviour and the loop
live in :mod:`analytics.experiments.simulation` (the demo set-up runs the same function). Attribution
runs once at the end, then the experiment's results are printed.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from analytics.experiments.services import attribute_events
from analytics.experiments.simulation import COMMIT_EVERY, SimulationError, report_lines, simulate_traffic
from shop_recs.serving.models import Experiment
from shop_recs.stores.models import Store
from shop_recs.stores.scoping import store_scope


class Command(BaseCommand):
    help = "Simulate shoppers against the serving API (and an experiment) from the demo's hidden tastes."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--store", default="demo")
        parser.add_argument("--customers", type=int, default=300)
        parser.add_argument("--requests", type=int, default=3000)
        parser.add_argument("--experiment", type=int, default=None, help="print this experiment's results")
        parser.add_argument("--placement", default=None, help="default: the experiment's placement, else 'home'")
        parser.add_argument("--n", type=int, default=10, help="items per list")
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--base-url", default="", help="a running server (default: in-process test client)")
        parser.add_argument("--api-key", default="", help="needed with --base-url; default: a new key")
        parser.add_argument(
            "--commit-every", type=int, default=COMMIT_EVERY,
            help="requests per events batch (and, in-process, per database transaction)",
        )  # fmt: skip
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **opts: Any) -> None:
        store = Store.objects.filter(slug=opts["store"]).first()
        if store is None:
            raise CommandError(f"no store {opts['store']!r}")
        placement = opts["placement"]
        exp = None
        if opts["experiment"]:
            with store_scope(store):
                exp = Experiment.objects.filter(pk=opts["experiment"]).first()
            if exp is None:
                raise CommandError(f"no experiment {opts['experiment']} in store {store.slug!r}")
            placement = placement or exp.placement
        bar = tqdm(total=opts["requests"], desc="requests", disable=opts["no_progress"])
        try:
            stats = simulate_traffic(
                store,
                customers=opts["customers"],
                requests=opts["requests"],
                placement=placement or "home",
                n=opts["n"],
                seed=opts["seed"],
                base_url=opts["base_url"],
                api_key=opts["api_key"],
                commit_every=opts["commit_every"],
                progress=bar.update,
            )
        except SimulationError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            bar.close()
        self.stdout.write(stats.summary())
        self.stdout.write(f"attributed {attribute_events(store)} events")
        if exp is not None:
            for line in report_lines(store, exp):
                self.stdout.write(line)
