from __future__ import annotations

from shop_recs.imports.importers import import_events
from shop_recs.imports.management.commands._base import ImportCommand


class Command(ImportCommand):
    help = (
        "Append events from a CSV or JSONL file (customer,session_id,type,sku,value,quantity,order_id,query,"
        "timestamp,context). All-or-nothing; a file already imported into the store is refused."
    )
    unit = "events"

    def handle(self, *args, **options) -> None:
        store = self.get_store(options["store"])
        self.run_import(import_events, store, self.resolve_file(options["file"]), quiet=options["no_progress"])
