from __future__ import annotations

from datetime import date

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from shop_recs.imports.demo import DemoConfig, clear_store_data, seed_demo_store, store_has_data
from shop_recs.stores.models import Store


class Command(BaseCommand):
    help = (
        "Fill a store with a synthetic catalog, customers with hidden tastes and ~6 months of events. "
        "The same --seed (and --end-date) always gives the same data. Creates the store if absent."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--store", default="demo", help="store slug (default: demo)")
        parser.add_argument("--name", default="", help="store name when it is created (default: from the slug)")
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument("--customers", type=int, default=5_000)
        parser.add_argument("--products", type=int, default=2_000)
        parser.add_argument("--events", type=int, default=300_000)
        parser.add_argument("--days", type=int, default=182, help="length of the history in days")
        parser.add_argument("--end-date", type=date.fromisoformat, default=None, help="YYYY-MM-DD (default: today)")
        parser.add_argument(
            "--reset", action="store_true", help="delete the store's catalog, customers and events first"
        )
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **opts) -> None:
        for name in ("customers", "products", "events", "days"):
            if opts[name] < 1:
                raise CommandError(f"--{name} must be positive")
        if opts["products"] < 80:
            raise CommandError("--products must be at least 80 (two per category)")
        store, created = Store.objects.get_or_create(
            slug=opts["store"], defaults={"name": opts["name"] or opts["store"].replace("-", " ").title()}
        )
        if not created and store_has_data(store):
            if not opts["reset"]:
                raise CommandError(
                    f"Store {store.slug!r} already has products, customers or events; use --reset to replace them."
                )
            clear_store_data(store)
        cfg = DemoConfig(
            seed=opts["seed"],
            customers=opts["customers"],
            products=opts["products"],
            events=opts["events"],
            days=opts["days"],
            end_date=opts["end_date"],
        )
        bar = tqdm(total=cfg.events, desc=f"seeding {store.slug}", unit=" events", disable=opts["no_progress"])
        try:
            result = seed_demo_store(store, cfg, progress=bar.update)
        finally:
            bar.close()
        write_seed_report(self.stdout, store, result)


def write_seed_report(out, store: Store, result) -> None:
    out.write(
        f"Seeded {store.slug!r}: {result.products:,} products in {result.categories} categories, "
        f"{result.customers:,} customers, {result.events:,} events in {result.sessions:,} sessions "
        f"({result.orders:,} orders)."
    )
    out.write("  events by type: " + ", ".join(f"{k} {v:,}" for k, v in result.events_by_type.items()))
    out.write("  seconds: " + ", ".join(f"{k} {v}" for k, v in result.seconds.items()))
    out.write(f"  hidden tastes: {result.tastes_file}")
