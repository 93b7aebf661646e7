from __future__ import annotations

from django.conf import settings

from shop_recs.imports.importers import UCI_OUTCOMES, import_uci
from shop_recs.imports.management.commands._base import ImportCommand
from shop_recs.imports.models import ImportStatus

DEFAULT_FILE = settings.BASE_DIR.parent / "shared" / "data" / "online_retail.csv.gz"


class Command(ImportCommand):
    help = (
        "Import the UCI Online Retail log (products, customers, purchase events) and print what happened "
        f"to every row. Default file: {DEFAULT_FILE}. See docs/importers.md for the rules."
    )
    importer = staticmethod(import_uci)
    unit = "events"
    file_required = False
    default_file = DEFAULT_FILE

    def handle(self, *args, **options) -> None:
        job = self.import_file(options)
        if job.status != ImportStatus.SUCCEEDED:
            return
        outcomes = job.report["outcomes"]
        self.stdout.write("\n  Every row of the file, by outcome:")
        for name, help_text in UCI_OUTCOMES:
            self.stdout.write(f"    {outcomes.get(name, 0):>9,}  {name:<22} {help_text}")
        total = sum(outcomes.values())
        self.stdout.write(f"    {total:>9,}  total (rows read: {job.rows_read:,})")
