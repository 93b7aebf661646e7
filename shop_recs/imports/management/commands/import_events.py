from __future__ import annotations

from shop_recs.imports.importers import EVENT_FILE_COLUMNS, import_events
from shop_recs.imports.management.commands._base import ImportCommand


class Command(ImportCommand):
    help = (
        f"Append events from a CSV or JSONL file ({','.join(EVENT_FILE_COLUMNS)}). "
        "All-or-nothing; a file already imported into the store is refused."
    )
    importer = staticmethod(import_events)
    unit = "events"
