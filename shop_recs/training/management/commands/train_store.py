"""``manage.py train_store <slug> [--algorithm NAME ...]``: train in this process with a progress bar."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from shop_recs.stores.models import Store
from shop_recs.training import errors, services


class Command(BaseCommand):
    help = "Train a store's recommenders synchronously and activate the result."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("store_slug")
        parser.add_argument(
            "--algorithm",
            action="append",
            dest="algorithms",
            choices=services.available_algorithms(),
            help=f"repeatable; default: {', '.join(services.DEFAULT_ALGORITHMS)}",
        )

    def handle(self, *args, store_slug: str, algorithms: list[str] | None, **options) -> None:
        try:
            store = Store.objects.get(slug=store_slug)
        except Store.DoesNotExist:
            raise CommandError(f"no store with slug {store_slug!r}")
        bar = tqdm(total=100, unit="%", disable=options["verbosity"] == 0)

        def show(stage: str, percent: int) -> None:
            bar.set_description(stage)
            bar.update(percent - bar.n)

        try:
            run = services.train_store(store, algorithms, on_progress=show)
        except errors.TrainingError as exc:
            raise CommandError(str(exc))
        finally:
            bar.close()
        metrics = run.metrics.get("algorithms", {})
        for name, values in metrics.items():
            self.stdout.write(f"{name}: ndcg@10={values.get('ndcg@10')} recall@10={values.get('recall@10')}")
        self.stdout.write(self.style.SUCCESS(f"run #{run.pk} succeeded; gate: {run.gate.get('reason')}"))
