"""File importers: a catalog CSV, an events CSV/JSONL, and the UCI Online Retail log.

Every importer is a plain function ``import_*(store, path, ...) -> ImportJob``. It records an
:class:`ImportJob` first (so a failure is visible in the dashboard), then does all its writes in one
transaction: a malformed file writes nothing, and the job lists the offending lines. The management
commands and the dashboard upload page are thin wrappers around these functions.

Decisions (also in ``docs/importers.md``):

* **All-or-nothing per file.** Rows are validated while streaming; after the first error nothing more
  is written, validation continues (so the report lists every bad line, capped at
  ``MAX_REPORTED_ERRORS``) and the transaction is rolled back at the end.
* **No duplicates on re-run.** Products and customers are upserted by their natural keys (sku,
  external id). Events have no natural key (two identical views a second apart are both real), so an
  event-bearing file is identified by the SHA-256 of its bytes: a file already imported successfully
  into the store is refused with status ``duplicate`` and nothing written. A partial unique constraint
  on ``ImportJob`` makes this hold for two concurrent uploads too.
* **Constant memory for events.** CSV/JSONL files are read row by row and written in chunks of
  ``CHUNK_ROWS`` with ``write_events`` (COPY on PostgreSQL).

This module is the public face of the package; the code lives in :mod:`.jobs` (the job record and
error report), :mod:`.parsing` (cell parsers, file readers), :mod:`.csv_importers` (catalog and
events) and :mod:`.uci` (the UCI Online Retail log).
"""

from __future__ import annotations

from shop_recs.imports.csv_importers import (
    CATALOG_COLUMNS,
    CHUNK_ROWS,
    EVENT_FILE_COLUMNS,
    PRODUCT_CHUNK,
    import_catalog,
    import_events,
    normalise_category_path,
)
from shop_recs.imports.jobs import MAX_REPORTED_ERRORS, ImportFailed, RowError, file_fingerprint
from shop_recs.imports.uci import UCI_COLUMNS, UCI_IMPORTED, UCI_OUTCOMES, import_uci

__all__ = [
    "CATALOG_COLUMNS",
    "CHUNK_ROWS",
    "EVENT_FILE_COLUMNS",
    "MAX_REPORTED_ERRORS",
    "PRODUCT_CHUNK",
    "UCI_COLUMNS",
    "UCI_IMPORTED",
    "UCI_OUTCOMES",
    "ImportFailed",
    "RowError",
    "file_fingerprint",
    "import_catalog",
    "import_events",
    "import_uci",
    "normalise_category_path",
]
