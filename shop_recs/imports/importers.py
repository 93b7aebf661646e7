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
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from django.db import IntegrityError, transaction
from django.utils import timezone

from shop_recs.activity.models import EventType
from shop_recs.activity.services import EVENT_FIELDS
from shop_recs.imports.models import ImportJob, ImportKind, ImportStatus
from shop_recs.stores.models import Store
from shop_recs.stores.scoping import store_scope

__all__ = [
    "CATALOG_COLUMNS",
    "EVENT_FILE_COLUMNS",
    "ImportFailed",
    "RowError",
    "file_fingerprint",
    "import_catalog",
    "import_events",
    "import_uci",
]

MAX_REPORTED_ERRORS = 100
CHUNK_ROWS = 5_000
PRODUCT_CHUNK = 1_000

Progress = Callable[[int], None]

CATALOG_COLUMNS = (
    "sku",
    "title",
    "description",
    "category",
    "brand",
    "tags",
    "price",
    "currency",
    "image_url",
    "is_active",
    "in_stock",
)
CATALOG_REQUIRED = ("sku", "title")

# The columns of an events file are the fields of the events API: one format, one list.
EVENT_FILE_COLUMNS = EVENT_FIELDS
EVENT_REQUIRED = ("type", "timestamp")
EVENT_TYPES = frozenset(EventType.values)
# Event types that are about one product; a search carries a query instead.
PRODUCT_EVENT_TYPES = EVENT_TYPES - {EventType.SEARCH}

_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f"}
_TAG_SPLIT = re.compile(r"[;|]")
_CATEGORY_SPLIT = re.compile(r"\s*>\s*")


@dataclass(frozen=True)
class RowError:
    """One problem in the file; ``line`` is the 1-based physical line (the header is line 1)."""

    line: int
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "message": self.message}

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class ImportFailed(Exception):  # noqa: N818 - reads as an outcome at call sites
    """The file cannot be imported; nothing was written."""

    def __init__(self, errors: list[RowError], total: int | None = None) -> None:
        self.errors = errors[:MAX_REPORTED_ERRORS]
        self.total = total if total is not None else len(errors)
        head = "; ".join(str(e) for e in self.errors[:5])
        more = f" (and {self.total - 5} more)" if self.total > 5 else ""
        super().__init__(f"{self.total} error(s): {head}{more}")


class _Errors:
    """Collects row errors, keeping the first ``MAX_REPORTED_ERRORS`` and counting all."""

    def __init__(self) -> None:
        self.items: list[RowError] = []
        self.total = 0

    def add(self, line: int, message: str) -> None:
        self.total += 1
        if len(self.items) < MAX_REPORTED_ERRORS:
            self.items.append(RowError(line, message))

    def __bool__(self) -> bool:
        return self.total > 0

    def raise_if_any(self) -> None:
        if self.total:
            self.items.sort(key=lambda e: e.line)
            raise ImportFailed(self.items, self.total)


# --- Jobs ------------------------------------------------------------------------------------


def file_fingerprint(path: str | Path) -> str:
    """SHA-256 of the file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _start_job(store: Store, kind: str, path: Path, file_name: str | None, created_by) -> ImportJob:
    return ImportJob.all_stores.create(
        store=store,
        kind=kind,
        file_name=(file_name or path.name)[:500],
        fingerprint=file_fingerprint(path),
        status=ImportStatus.RUNNING,
        created_by=created_by if getattr(created_by, "pk", None) else None,
    )


def _previous_success(job: ImportJob) -> ImportJob | None:
    return (
        ImportJob.all_stores.filter(
            store_id=job.store_id, kind=job.kind, fingerprint=job.fingerprint, status=ImportStatus.SUCCEEDED
        )
        .exclude(pk=job.pk)
        .order_by("started_at")
        .first()
    )


def _mark_duplicate(job: ImportJob, previous: ImportJob | None) -> ImportJob:
    job.status = ImportStatus.DUPLICATE
    when = f" on {previous.started_at:%Y-%m-%d %H:%M} UTC" if previous else ""
    ref = f" by import #{previous.pk}{when}" if previous else ""
    job.message = f"This file was already imported{ref}; nothing was written."
    job.finished_at = timezone.now()
    job.save()
    return job


def _run_job(job: ImportJob, body: Callable[[ImportJob], None], *, refuse_duplicates: bool) -> ImportJob:
    """Run ``body`` in one transaction; record success, failure (with errors) or duplicate."""
    if refuse_duplicates and (previous := _previous_success(job)) is not None:
        return _mark_duplicate(job, previous)
    try:
        with transaction.atomic(), store_scope(job.store_id):
            body(job)
            job.status = ImportStatus.SUCCEEDED
            job.finished_at = timezone.now()
            job.save()
    except ImportFailed as exc:
        job.status = ImportStatus.FAILED
        job.rows_imported = 0
        job.errors = [e.as_dict() for e in exc.errors]
        job.error_count = exc.total
        job.message = "The file was rejected and nothing was imported: " + str(exc)
    except IntegrityError as exc:
        if refuse_duplicates and (previous := _previous_success(job)) is not None:
            # A concurrent import of the same file committed first.
            return _mark_duplicate(job, previous)
        job.status = ImportStatus.FAILED
        job.rows_imported = 0
        job.message = f"The database refused the data; nothing was imported: {exc}"
    except Exception as exc:
        job.status = ImportStatus.FAILED
        job.rows_imported = 0
        job.message = f"Internal error; nothing was imported: {exc!r}"
        job.finished_at = timezone.now()
        job.save()
        raise
    job.finished_at = timezone.now()
    job.save()
    return job


# --- Small parsers ---------------------------------------------------------------------------


def _text(raw: Any) -> str:
    if raw is None:
        return ""
    return str(raw).strip()


def _parse_bool(raw: Any, default: bool) -> bool:
    if isinstance(raw, bool):
        return raw
    value = _text(raw).lower()
    if value == "":
        return default
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{raw!r} is not a yes/no value (use true/false, 1/0, yes/no)")


def _parse_decimal(raw: Any) -> Decimal | None:
    value = _text(raw)
    if value == "":
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{raw!r} is not a number")
    if not number.is_finite() or number < 0:
        raise ValueError(f"{raw!r} is not a non-negative number")
    if number >= Decimal("1e10"):
        raise ValueError(f"{raw!r} is too large")
    return number.quantize(Decimal("0.01"))


def _parse_float(raw: Any) -> float | None:
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        number = float(raw)
    else:
        value = _text(raw)
        if value == "":
            return None
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"{raw!r} is not a number")
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"{raw!r} is not a finite number")
    return number


def _parse_int(raw: Any) -> int | None:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    value = _text(raw)
    if value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{raw!r} is not a whole number")
    if not number.is_integer():
        raise ValueError(f"{raw!r} is not a whole number")
    if abs(number) > 2**31 - 1:
        raise ValueError(f"{raw!r} is too large")
    return int(number)


def _parse_timestamp(raw: Any, tz: ZoneInfo) -> datetime:
    """ISO 8601 (``2024-05-01T10:00:00Z``, ``2024-05-01 10:00:00+02:00``) or epoch seconds.

    A timestamp without an offset is read in the store's time zone.
    """
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return datetime.fromtimestamp(float(raw), tz=ZoneInfo("UTC"))
    value = _text(raw)
    if value == "":
        raise ValueError("timestamp is empty")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{raw!r} is not an ISO 8601 date-time (e.g. 2024-05-01T10:00:00Z)")
    if timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=tz)
    return parsed


def _parse_context(raw: Any) -> dict | None:
    if raw is None or isinstance(raw, dict):
        return raw or None
    value = _text(raw)
    if value == "":
        return None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        raise ValueError(f"context {value[:60]!r} is not valid JSON")
    if not isinstance(parsed, dict):
        raise ValueError("context must be a JSON object")
    return parsed or None


def _check_length(value: str, limit: int, name: str) -> str:
    if len(value) > limit:
        raise ValueError(f"{name} is longer than {limit} characters")
    return value


def _open_text(path: Path) -> io.TextIOBase:
    # utf-8-sig: spreadsheet exports often start with a byte-order mark.
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def _csv_rows(
    path: Path, errors: _Errors, check_header: Callable[[list[str]], None]
) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """Header and an iterator of (line number, row dict) with line numbers that match an editor.

    ``check_header`` may raise ``ImportFailed``; the file is closed either way.
    """
    fh = _open_text(path)
    reader = csv.reader(fh)
    try:
        header = [h.strip().lower() for h in next(reader)]
        check_header(header)
    except StopIteration:
        fh.close()
        raise ImportFailed([RowError(1, "the file is empty (no header row)")])
    except (UnicodeDecodeError, csv.Error) as exc:
        fh.close()
        raise ImportFailed([RowError(1, f"cannot read the header: {exc}")])
    except ImportFailed:
        fh.close()
        raise

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        width = len(header)
        start = reader.line_num + 1
        try:
            for values in reader:
                line, start = start, reader.line_num + 1
                if not values or all(v.strip() == "" for v in values):
                    continue
                if len(values) != width:
                    errors.add(line, f"expected {width} columns, found {len(values)}")
                    continue
                yield line, dict(zip(header, values, strict=True))
        except (UnicodeDecodeError, csv.Error) as exc:
            errors.add(reader.line_num, f"unreadable CSV: {exc}")
        finally:
            fh.close()

    return header, rows()


def _jsonl_rows(path: Path, errors: _Errors) -> Iterator[tuple[int, dict[str, Any]]]:
    line_no = 0
    with _open_text(path) as fh:
        try:
            for line_no, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    errors.add(line_no, f"invalid JSON: {exc.msg}")
                    continue
                if not isinstance(obj, dict):
                    errors.add(line_no, "each line must be a JSON object")
                    continue
                yield line_no, {str(k).strip().lower(): v for k, v in obj.items()}
        except UnicodeDecodeError as exc:
            errors.add(line_no + 1, f"the file is not UTF-8: {exc}")


def _is_jsonl(path: Path) -> bool:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return bool(suffixes) and suffixes[-1] in (".jsonl", ".ndjson")


def _result_count(result: Any, name: str) -> int:
    if isinstance(result, dict):
        value = result.get(name, 0)
    else:
        value = getattr(result, name, 0)
    if isinstance(value, (list, tuple, set)):
        return len(value)
    return int(value or 0)


# --- Catalog ---------------------------------------------------------------------------------


def normalise_category_path(raw: str) -> str:
    """'Home>Kitchen > Mugs' -> 'Home > Kitchen > Mugs' (empty nodes dropped)."""
    parts = [p.strip() for p in _CATEGORY_SPLIT.split(raw.strip()) if p.strip()]
    return " > ".join(parts)


def _catalog_row(row: dict[str, str], extra_columns: list[str]) -> dict[str, Any]:
    sku = _check_length(_text(row.get("sku")), 100, "sku")
    if not sku:
        raise ValueError("sku is empty")
    title = _check_length(_text(row.get("title")), 500, "title")
    if not title:
        raise ValueError("title is empty")
    currency = _text(row.get("currency")).upper()
    if currency and not re.fullmatch(r"[A-Z]{3}", currency):
        raise ValueError(f"currency {currency!r} is not a 3-letter ISO code")
    image_url = _text(row.get("image_url"))
    if image_url and not re.match(r"^https?://", image_url):
        raise ValueError(f"image_url {image_url[:60]!r} is not an http(s) URL")
    tags = [t.strip() for t in _TAG_SPLIT.split(_text(row.get("tags"))) if t.strip()]
    try:
        price = _parse_decimal(row.get("price"))
    except ValueError as exc:
        raise ValueError(f"price: {exc}")
    return {
        "sku": sku,
        "title": title,
        "description": _text(row.get("description")),
        "category": normalise_category_path(_text(row.get("category"))),
        "brand": _check_length(_text(row.get("brand")), 200, "brand"),
        "tags": tags,
        # upsert_products takes prices as strings/numbers; a blank currency means the store's own.
        "price": None if price is None else str(price),
        "currency": currency or None,
        "image_url": _check_length(image_url, 1000, "image_url"),
        "is_active": _parse_bool(row.get("is_active"), True),
        "in_stock": _parse_bool(row.get("in_stock"), True),
        "attributes": {col: _text(row[col]) for col in extra_columns if _text(row.get(col))},
    }


def _check_catalog_header(header: list[str]) -> None:
    missing = [c for c in CATALOG_REQUIRED if c not in header]
    if missing:
        raise ImportFailed([RowError(1, f"missing required column(s): {', '.join(missing)}")])
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise ImportFailed([RowError(1, f"duplicate column(s): {', '.join(dupes)}")])


def import_catalog(
    store: Store,
    path: str | Path,
    *,
    file_name: str | None = None,
    created_by=None,
    progress: Progress | None = None,
) -> ImportJob:
    """Upsert products from a catalog CSV (by sku: re-running updates, never duplicates)."""
    path = Path(path)
    job = _start_job(store, ImportKind.CATALOG, path, file_name, created_by)

    def body(job: ImportJob) -> None:
        from shop_recs.catalog.services import InvalidRows, upsert_products

        errors = _Errors()
        header, rows = _csv_rows(path, errors, _check_catalog_header)
        extra = [h for h in header if h and h not in CATALOG_COLUMNS]
        seen: dict[str, int] = {}
        pending: list[dict[str, Any]] = []
        pending_lines: list[int] = []
        created = updated = read = 0

        def flush() -> None:
            nonlocal created, updated
            if pending and not errors:
                try:
                    result = upsert_products(store, pending)
                except InvalidRows as exc:
                    for err in exc.errors:
                        index = err.get("index", -1)
                        line = pending_lines[index] if 0 <= index < len(pending_lines) else 1
                        errors.add(line, f"{err.get('field')}: {err.get('reason')}")
                else:
                    created += _result_count(result, "created")
                    updated += _result_count(result, "updated")
            pending.clear()
            pending_lines.clear()

        for line, raw in rows:
            read += 1
            try:
                product = _catalog_row(raw, extra)
            except ValueError as exc:
                errors.add(line, str(exc))
                continue
            if product["sku"] in seen:
                errors.add(line, f"sku {product['sku']!r} appears again (first on line {seen[product['sku']]})")
                continue
            seen[product["sku"]] = line
            pending.append(product)
            pending_lines.append(line)
            if len(pending) >= PRODUCT_CHUNK:
                flush()
                if progress:
                    progress(PRODUCT_CHUNK)
        flush()
        job.rows_read = read
        errors.raise_if_any()
        job.rows_imported = len(seen)
        job.report = {"products_created": created, "products_updated": updated, "extra_columns": extra}

    return _run_job(job, body, refuse_duplicates=False)


# --- Events ----------------------------------------------------------------------------------


@dataclass
class _PendingEvents:
    lines: list[int] = field(default_factory=list)
    customers: list[str] = field(default_factory=list)
    skus: list[str] = field(default_factory=list)
    rest: list[tuple] = field(default_factory=list)  # (session, type, value, qty, order, query, ts, ctx)

    def __len__(self) -> int:
        return len(self.lines)

    def clear(self) -> None:
        for part in (self.lines, self.customers, self.skus, self.rest):
            part.clear()


def _s(raw: Any) -> str:
    """``_text`` with a fast path for the common case (CSV cells are already strings)."""
    return raw.strip() if type(raw) is str else _text(raw)


def _event_row(row: dict[str, Any], tz: ZoneInfo) -> tuple[str, str, tuple]:
    get = row.get
    customer = _check_length(_s(get("customer")), 100, "customer")
    session = _check_length(_s(get("session_id")), 100, "session_id")
    if not customer and not session:
        raise ValueError("needs a customer or a session_id")
    event_type = _s(get("type")).lower()
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r} (expected one of {', '.join(sorted(EVENT_TYPES))})")
    sku = _check_length(_s(get("sku")), 100, "sku")
    query = _check_length(_s(get("query")), 500, "query")
    if event_type in PRODUCT_EVENT_TYPES and not sku:
        raise ValueError(f"a {event_type} event needs a sku")
    if event_type == EventType.SEARCH and not query:
        raise ValueError("a search event needs a query")
    raw_value, raw_quantity, raw_context = get("value"), get("quantity"), get("context")
    try:
        value = None if raw_value == "" or raw_value is None else _parse_float(raw_value)
    except ValueError as exc:
        raise ValueError(f"value: {exc}")
    try:
        quantity = None if raw_quantity == "" or raw_quantity is None else _parse_int(raw_quantity)
    except ValueError as exc:
        raise ValueError(f"quantity: {exc}")
    if event_type == EventType.RATING and value is None:
        raise ValueError("a rating event needs a value")
    timestamp = _parse_timestamp(get("timestamp"), tz)
    context = None if raw_context == "" or raw_context is None else _parse_context(raw_context)
    order_id = _check_length(_s(get("order_id")), 100, "order_id")
    return customer, sku, (session, event_type, value, quantity, order_id, query, timestamp, context)


def _check_event_header(header: list[str]) -> None:
    missing = [c for c in EVENT_REQUIRED if c not in header]
    if "customer" not in header and "session_id" not in header:
        missing.append("customer or session_id")
    unknown = [h for h in header if h not in EVENT_FILE_COLUMNS]
    problems = []
    if missing:
        problems.append(f"missing required column(s): {', '.join(missing)}")
    if unknown:
        problems.append(f"unknown column(s): {', '.join(unknown)} (expected {', '.join(EVENT_FILE_COLUMNS)})")
    if problems:
        raise ImportFailed([RowError(1, "; ".join(problems))])


def import_events(
    store: Store,
    path: str | Path,
    *,
    file_name: str | None = None,
    created_by=None,
    progress: Progress | None = None,
) -> ImportJob:
    """Append events from a CSV or JSONL file; unknown customers are created, unknown skus are errors."""
    from shop_recs.activity.ingest import ensure_customers_counting, product_ids_by_sku, write_events

    path = Path(path)
    job = _start_job(store, ImportKind.EVENTS, path, file_name, created_by)
    tz = ZoneInfo(store.timezone or "UTC")

    def body(job: ImportJob) -> None:
        errors = _Errors()
        if _is_jsonl(path):
            rows: Iterator[tuple[int, dict[str, Any]]] = _jsonl_rows(path, errors)
            header = None
        else:
            header, rows = _csv_rows(path, errors, _check_event_header)
        pending = _PendingEvents()
        counts = {"read": 0, "written": 0, "customers_created": 0}
        by_type: dict[str, int] = {}

        # Ids resolved by earlier chunks: a file names the same customers and products again and
        # again, and looking them up once instead of per chunk took ~40% of the import's time.
        known: dict[str, int] = {}
        customer_ids: dict[str, int] = {}

        def flush() -> None:
            if not pending:
                return
            known.update(product_ids_by_sku(store.id, {s for s in pending.skus if s and s not in known}))
            for line, sku in zip(pending.lines, pending.skus, strict=True):
                if sku and sku not in known:
                    errors.add(line, f"unknown sku {sku!r} (import the catalog first)")
            if not errors:
                new_names = {c for c in pending.customers if c and c not in customer_ids}
                resolved, created = ensure_customers_counting(store.id, new_names)
                customer_ids.update(resolved)
                counts["customers_created"] += created
                out = []
                for cust, sku, (sess, etype, value, qty, order, query, ts, ctx) in zip(
                    pending.customers, pending.skus, pending.rest, strict=True
                ):
                    out.append(
                        (
                            customer_ids[cust] if cust else None,
                            sess,
                            etype,
                            known[sku] if sku else None,
                            value,
                            qty,
                            order,
                            query,
                            ts,
                            ctx,
                        )
                    )
                    by_type[etype] = by_type.get(etype, 0) + 1
                counts["written"] += write_events(store.id, out)
            if progress:
                progress(len(pending))
            pending.clear()

        for line, raw in rows:
            counts["read"] += 1
            if header is None:
                unknown = [k for k in raw if k not in EVENT_FILE_COLUMNS]
                if unknown:
                    errors.add(line, f"unknown field(s): {', '.join(sorted(unknown))}")
                    continue
            try:
                customer, sku, rest = _event_row(raw, tz)
            except ValueError as exc:
                errors.add(line, str(exc))
                continue
            pending.lines.append(line)
            pending.customers.append(customer)
            pending.skus.append(sku)
            pending.rest.append(rest)
            if len(pending) >= CHUNK_ROWS:
                flush()
        flush()
        job.rows_read = counts["read"]
        errors.raise_if_any()
        if counts["read"] == 0:
            raise ImportFailed([RowError(1, "the file has no event rows")])
        job.rows_imported = counts["written"]
        job.report = {
            "events_written": counts["written"],
            "customers_created": counts["customers_created"],
            "events_by_type": dict(sorted(by_type.items())),
        }

    return _run_job(job, body, refuse_duplicates=True)


# --- UCI Online Retail -----------------------------------------------------------------------

UCI_COLUMNS = ("InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country")
# Postage, carriage, manual adjustments, discounts, fees, commissions, samples, bad debt, the
# 0.001-priced cushion pads line: bookkeeping lines, not things a customer chose to buy.
UCI_NON_PRODUCT_CODES = frozenset(
    {"POST", "DOT", "M", "C2", "D", "S", "B", "BANK CHARGES", "AMAZONFEE", "CRUK", "PADS"}
)
UCI_NON_PRODUCT_PREFIXES = ("GIFT_0001_",)  # gift vouchers: money, not merchandise

# Outcomes in the order they are decided: each row gets the first that applies.
UCI_OUTCOMES = (
    ("malformed", "unparseable quantity, price, date, invoice or stock code (the import fails)"),
    ("non_product_code", "postage, fees, discounts, manual adjustments, samples, gift vouchers"),
    ("cancellation", "cancellation invoice (InvoiceNo starts with C)"),
    ("adjustment_invoice", "accounting adjustment invoice (InvoiceNo starts with A)"),
    ("non_positive_quantity", "quantity zero or negative outside a cancellation (stock corrections)"),
    ("non_positive_price", "unit price zero or negative (free samples, write-offs)"),
    ("purchase", "imported: purchase by a known customer"),
    ("guest_purchase", "imported: guest checkout, stored as an anonymous session per invoice"),
)
UCI_IMPORTED = ("purchase", "guest_purchase")
UCI_GUEST_SESSION_PREFIX = "uci-guest-"


def import_uci(
    store: Store,
    path: str | Path,
    *,
    file_name: str | None = None,
    created_by=None,
    progress: Progress | None = None,
) -> ImportJob:
    """Import the UCI Online Retail log: products, customers and purchase events.

    ``job.skipped`` + the imported outcomes in ``job.report["outcomes"]`` account for every row.
    """
    path = Path(path)
    job = _start_job(store, ImportKind.UCI, path, file_name, created_by)

    def body(job: ImportJob) -> None:
        _uci_body(store, path, job, progress)

    return _run_job(job, body, refuse_duplicates=True)


def _uci_body(store: Store, path: Path, job: ImportJob, progress: Progress | None) -> None:
    import numpy as np
    import pandas as pd

    from shop_recs.activity.ingest import ensure_customers_counting, product_ids_by_sku, write_events
    from shop_recs.activity.models import Customer
    from shop_recs.catalog.services import upsert_products

    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, compression="infer")
    except (ValueError, UnicodeDecodeError, OSError, pd.errors.ParserError) as exc:
        raise ImportFailed([RowError(1, f"cannot parse the file as CSV: {exc}")])
    missing = [c for c in UCI_COLUMNS if c not in df.columns]
    if missing:
        raise ImportFailed([RowError(1, f"missing column(s): {', '.join(missing)}")])
    n = len(df)
    job.rows_read = n
    lines = np.arange(n) + 2  # header is line 1; the UCI file has no multi-line fields

    invoice = df["InvoiceNo"].str.strip()
    code = df["StockCode"].str.strip().str.upper()
    desc = df["Description"].str.strip().str.replace(r"\s+", " ", regex=True)
    qty = pd.to_numeric(df["Quantity"], errors="coerce")
    price = pd.to_numeric(df["UnitPrice"], errors="coerce")
    when = pd.to_datetime(df["InvoiceDate"].str.strip(), format="%Y-%m-%d %H:%M:%S", errors="coerce", utc=True)
    customer = df["CustomerID"].str.strip().str.replace(r"\.0+$", "", regex=True)
    country = df["Country"].str.strip()

    bad_qty = qty.isna() | (qty.fillna(0) % 1 != 0)
    bad = bad_qty | price.isna() | when.isna() | invoice.eq("") | code.eq("")
    bad |= ~customer.str.fullmatch(r"\d*")
    if bad.any():
        errors = _Errors()
        for i in np.flatnonzero(bad.to_numpy())[:MAX_REPORTED_ERRORS]:
            problems = []
            if bad_qty.iat[i]:
                problems.append(f"Quantity {df['Quantity'].iat[i]!r} is not a whole number")
            if pd.isna(price.iat[i]):
                problems.append(f"UnitPrice {df['UnitPrice'].iat[i]!r} is not a number")
            if pd.isna(when.iat[i]):
                problems.append(f"InvoiceDate {df['InvoiceDate'].iat[i]!r} is not YYYY-MM-DD HH:MM:SS")
            if invoice.iat[i] == "":
                problems.append("InvoiceNo is empty")
            if code.iat[i] == "":
                problems.append("StockCode is empty")
            if not problems:
                problems.append(f"CustomerID {df['CustomerID'].iat[i]!r} is not a number")
            errors.add(int(lines[i]), "; ".join(problems))
        errors.total = int(bad.sum())
        errors.raise_if_any()

    non_product = code.isin(UCI_NON_PRODUCT_CODES) | code.str.startswith(UCI_NON_PRODUCT_PREFIXES)
    conditions = [
        non_product,
        invoice.str.startswith("C"),
        ~invoice.str.fullmatch(r"\d+"),
        qty <= 0,
        price <= 0,
        customer.ne(""),
    ]
    labels = [name for name, _ in UCI_OUTCOMES[1:-1]]
    outcome = pd.Series(np.select(conditions, labels, default="guest_purchase"), index=df.index)
    counts = {name: int(c) for name, c in outcome.value_counts().items()}
    outcomes = {name: counts.get(name, 0) for name, _ in UCI_OUTCOMES}
    if progress:
        progress(0)

    keep = outcome.isin(UCI_IMPORTED).to_numpy()
    sold = pd.DataFrame(
        {
            "invoice": invoice[keep],
            "sku": code[keep],
            "desc": desc[keep],
            "qty": qty[keep].astype("int64"),
            "price": price[keep],
            "when": when[keep],
            "customer": customer[keep],
            "country": country[keep],
        }
    )

    # Products. Title = the description used most often on this code's sales lines (ties: the
    # alphabetically first) -- the variants are typos, abbreviations and re-wordings of one item,
    # and the most used one is what customers saw most; the others are kept in attributes.
    described = sold[sold["desc"] != ""]
    by_desc = described.groupby(["sku", "desc"]).size().reset_index(name="n")
    by_desc = by_desc.sort_values(["sku", "n", "desc"], ascending=[True, False, True])
    titles = by_desc.drop_duplicates("sku").set_index("sku")["desc"]
    alternates = by_desc[by_desc.duplicated("sku")].groupby("sku")["desc"].agg(lambda s: list(s)[:5])
    median_price = sold.groupby("sku")["price"].median()
    product_rows = []
    for sku, med in median_price.items():
        attributes: dict[str, Any] = {"source": "uci-online-retail"}
        alts = alternates.get(sku)
        if alts:
            attributes["alt_titles"] = alts
        product_rows.append(
            {
                "sku": sku,
                "title": titles.get(sku, sku)[:500],
                "description": "",
                "category": "",
                "brand": "",
                "tags": [],
                "price": str(Decimal(str(med)).quantize(Decimal("0.01"))),
                "currency": "GBP",
                "image_url": "",
                "is_active": True,
                "in_stock": True,
                "attributes": attributes,
            }
        )
    created = updated = 0
    for i in range(0, len(product_rows), PRODUCT_CHUNK):
        result = upsert_products(store, product_rows[i : i + PRODUCT_CHUNK])
        created += _result_count(result, "created")
        updated += _result_count(result, "updated")
    product_ids = product_ids_by_sku(store.id, median_price.index.tolist())

    # Customers: "17850.0" -> "17850"; country = the one on most of their lines.
    known = sold[sold["customer"] != ""]
    countries = known.groupby(["customer", "country"]).size().reset_index(name="n")
    countries = countries.sort_values(["customer", "n", "country"], ascending=[True, False, True])
    country_of = countries.drop_duplicates("customer").set_index("customer")["country"].to_dict()
    customer_ids, customers_created = ensure_customers_counting(store.id, list(country_of))
    changed = []
    for cust in Customer.all_stores.filter(store_id=store.id, id__in=list(customer_ids.values())).only(
        "id", "external_id", "country"
    ):
        wanted = country_of.get(cust.external_id, "")[:64]
        if wanted and cust.country != wanted:
            cust.country = wanted
            changed.append(cust)
    Customer.all_stores.bulk_update(changed, ["country"], batch_size=2_000)

    # Purchase events, one per invoice line, in file order.
    cust_pk = sold["customer"].map(customer_ids)
    is_guest = sold["customer"].eq("")
    sessions = np.where(is_guest, UCI_GUEST_SESSION_PREFIX + sold["invoice"], "")
    times = sold["when"].dt.to_pydatetime()
    columns = zip(
        [None if pd.isna(c) else int(c) for c in cust_pk],
        sessions.tolist(),
        sold["sku"].map(product_ids).astype("int64").tolist(),
        sold["price"].astype(float).tolist(),
        sold["qty"].tolist(),
        sold["invoice"].tolist(),
        list(times),
        strict=True,
    )
    written = 0
    batch: list[tuple] = []
    for cust, sess, prod, value, quantity, order, ts in columns:
        batch.append((cust, sess, EventType.PURCHASE.value, prod, value, quantity, order, None, ts, None))
        if len(batch) >= 50_000:
            written += write_events(store.id, batch)
            if progress:
                progress(len(batch))
            batch = []
    if batch:
        written += write_events(store.id, batch)
        if progress:
            progress(len(batch))

    job.rows_imported = written
    job.skipped = {name: outcomes[name] for name, _ in UCI_OUTCOMES[1:6] if outcomes[name]}
    job.rows_skipped = sum(job.skipped.values())
    job.report = {
        "outcomes": outcomes,
        "outcome_help": dict(UCI_OUTCOMES),
        "products_created": created,
        "products_updated": updated,
        "customers": len(customer_ids),
        "customers_created": customers_created,
        "customer_countries_set": len(changed),
        "events_written": written,
        "invoices": int(sold["invoice"].nunique()),
        "guest_invoices": int(sold.loc[is_guest, "invoice"].nunique()),
        "products_with_conflicting_descriptions": len(alternates),
        "first_timestamp": sold["when"].min().isoformat() if len(sold) else None,
        "last_timestamp": sold["when"].max().isoformat() if len(sold) else None,
    }
    assert sum(outcomes.values()) == n, "every row must have exactly one outcome"
