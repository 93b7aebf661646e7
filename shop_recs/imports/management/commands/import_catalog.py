from __future__ import annotations

from shop_recs.imports.importers import CATALOG_COLUMNS, import_catalog
from shop_recs.imports.management.commands._base import ImportCommand


class Command(ImportCommand):
    help = (
        f"Upsert products from a catalog CSV (columns {','.join(CATALOG_COLUMNS)}; "
        "other columns become attributes). Re-running updates."
    )
    importer = staticmethod(import_catalog)
    unit = "products"
