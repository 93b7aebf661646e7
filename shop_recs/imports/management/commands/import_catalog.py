from __future__ import annotations

from shop_recs.imports.importers import import_catalog
from shop_recs.imports.management.commands._base import ImportCommand


class Command(ImportCommand):
    help = (
        "Upsert products from a catalog CSV (columns sku,title,description,category,brand,tags,price,"
        "currency,image_url,is_active,in_stock; other columns become attributes). Re-running updates."
    )
    unit = "products"

    def handle(self, *args, **options) -> None:
        store = self.get_store(options["store"])
        self.run_import(import_catalog, store, self.resolve_file(options["file"]), quiet=options["no_progress"])
