"""The catalog CSV and events CSV/JSONL importers (rules: :mod:`.importers`, ``docs/importers.md``)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from django.utils.timezone import now

from shop_recs.activity.ingest import ensure_customers_counting, product_ids_by_sku, write_events
from shop_recs.activity.models import EventType
from shop_recs.activity.services import EVENT_FIELDS
from shop_recs.catalog import validation as rules
from shop_recs.catalog.services import PRODUCT_FIELDS, InvalidRows, upsert_products
from shop_recs.imports.columns import ColumnMap, map_columns, parse_in_stock, parse_price
from shop_recs.imports.jobs import ImportFailed, Progress, RowError, _Errors, _result_count, _run_job, _start_job
from shop_recs.imports.models import ImportJob, ImportKind
from shop_recs.imports.parsing import (
    _check_length,
    _csv_rows,
    _is_jsonl,
    _jsonl_rows,
    _parse_bool,
    _parse_context,
    _parse_float,
    _parse_int,
    _parse_timestamp,
    _text,
)
from shop_recs.stores.models import Store

CHUNK_ROWS = 5_000
PRODUCT_CHUNK = 1_000

# The columns of a catalog file are the product fields of the API (or a usual alias of one, see
# ``columns.COLUMN_ALIASES``); ``attributes`` is not a column of its own: the file's other columns
# become the attributes.
CATALOG_COLUMNS = ("sku", *(name for name in PRODUCT_FIELDS if name != "attributes"))
CATALOG_REQUIRED = ("sku", "title")

# The columns of an events file are the fields of the events API: one format, one list.
EVENT_FILE_COLUMNS = EVENT_FIELDS
EVENT_REQUIRED = ("type", "timestamp")
EVENT_TYPES = frozenset(EventType.values)
# Event types that are about one product; a search carries a query instead.
PRODUCT_EVENT_TYPES = EVENT_TYPES - {EventType.SEARCH}

_TAG_SPLIT = re.compile(r"[;|]")
_CATEGORY_SPLIT = re.compile(r"\s*>\s*")


# --- Catalog ---------------------------------------------------------------------------------


def normalise_category_path(raw: str) -> str:
    """'Home>Kitchen > Mugs' -> 'Home > Kitchen > Mugs' (empty nodes dropped)."""
    parts = [p.strip() for p in _CATEGORY_SPLIT.split(raw.strip()) if p.strip()]
    return " > ".join(parts)


def _cell(row: dict[str, str], columns: ColumnMap, name: str) -> str:
    column = columns.source.get(name)
    return _text(row.get(column)) if column is not None else ""


def _catalog_row(row: dict[str, str], columns: ColumnMap, store_currency: str) -> dict[str, Any]:
    """One catalog line as an ``upsert_products`` row; ``ValueError`` naming the file's column otherwise."""
    src = columns.source
    sku = _check_length(_cell(row, columns, "sku"), 100, src["sku"])
    if not sku:
        raise ValueError(f"{src['sku']} is empty")
    title = _check_length(_cell(row, columns, "title"), 500, src["title"])
    if not title:
        raise ValueError(f"{src['title']} is empty")
    currency = _cell(row, columns, "currency").upper()
    if currency and not re.fullmatch(r"[A-Z]{3}", currency):
        raise ValueError(f"{src['currency']}: {currency!r} is not a 3-letter ISO code")
    price, price_currency = parse_price(
        _cell(row, columns, "price"), src.get("price", "price"), currency or store_currency
    )
    if price_currency and currency and price_currency != currency:
        raise ValueError(f"{src['price']}: the price is in {price_currency} but {src['currency']} says {currency}")
    urls = {}
    for name in ("image_url", "url"):
        value = _cell(row, columns, name)
        if problem := rules.url_problem(value):
            raise ValueError(f"{src[name]}: {value[:60]!r} {problem}")
        urls[name] = value
    tags = [t.strip() for t in _TAG_SPLIT.split(_cell(row, columns, "tags")) if t.strip()]
    try:
        is_active = _parse_bool(row.get(src["is_active"]) if "is_active" in src else None, True)
    except ValueError as exc:
        raise ValueError(f"{src['is_active']}: {exc}") from None
    return {
        "sku": sku,
        "title": title,
        "description": _cell(row, columns, "description"),
        "category": normalise_category_path(_cell(row, columns, "category")),
        "brand": _check_length(_cell(row, columns, "brand"), 200, src.get("brand", "brand")),
        "tags": tags,
        # upsert_products takes prices as strings/numbers; no currency means the store's own.
        "price": None if price is None else str(price),
        "currency": currency or price_currency or None,
        "image_url": urls["image_url"],
        "url": urls["url"],
        "is_active": is_active,
        "in_stock": parse_in_stock(_cell(row, columns, "in_stock"), src.get("in_stock", "in_stock")),
        "attributes": {col: _text(row[col]) for col in columns.extra if _text(row.get(col))},
    }


def _check_catalog_header(header: list[str]) -> None:
    columns = map_columns(header)
    missing = [c for c in CATALOG_REQUIRED if c not in columns.source]
    if missing:
        raise ImportFailed([RowError(1, f"missing required column(s): {', '.join(missing)}")])
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise ImportFailed([RowError(1, f"duplicate column(s): {', '.join(dupes)}")])


class _CatalogWriter:
    """Upserts validated catalog rows in chunks; rows the catalog service rejects become line errors."""

    def __init__(self, store: Store, errors: _Errors) -> None:
        self.store = store
        self.errors = errors
        self.pending: list[dict[str, Any]] = []
        self.pending_lines: list[int] = []
        self.created = self.updated = 0

    def add(self, line: int, product: dict[str, Any]) -> None:
        self.pending.append(product)
        self.pending_lines.append(line)

    def flush(self) -> None:
        """Write the pending rows unless the file already has errors (nothing is written then)."""
        if self.pending and not self.errors:
            try:
                result = upsert_products(self.store, self.pending)
            except InvalidRows as exc:
                for err in exc.errors:
                    index = err.get("index", -1)
                    line = self.pending_lines[index] if 0 <= index < len(self.pending_lines) else 1
                    self.errors.add(line, f"{err.get('field')}: {err.get('reason')}")
            else:
                self.created += _result_count(result, "created")
                self.updated += _result_count(result, "updated")
        self.pending.clear()
        self.pending_lines.clear()


def import_catalog(
    store: Store,
    path: str | Path,
    *,
    file_name: str | None = None,
    created_by=None,
    progress: Progress | None = None,
    job: ImportJob | None = None,
) -> ImportJob:
    """Upsert products from a catalog CSV (by sku: re-running updates, never duplicates)."""
    path = Path(path)
    # A dashboard upload's job row exists already (created queued, claimed by ``uploads``).
    job = job if job is not None else _start_job(store, ImportKind.CATALOG, path, file_name, created_by)

    def body(job: ImportJob) -> None:
        errors = _Errors()
        header, rows = _csv_rows(path, errors, _check_catalog_header)
        columns = map_columns(header)
        seen: dict[str, int] = {}
        writer = _CatalogWriter(store, errors)
        read = 0
        for line, raw in rows:
            read += 1
            try:
                product = _catalog_row(raw, columns, store.currency)
            except ValueError as exc:
                errors.add(line, str(exc))
                continue
            if product["sku"] in seen:
                errors.add(line, f"sku {product['sku']!r} appears again (first on line {seen[product['sku']]})")
                continue
            seen[product["sku"]] = line
            writer.add(line, product)
            if len(writer.pending) >= PRODUCT_CHUNK:
                writer.flush()
                if progress:
                    progress(PRODUCT_CHUNK)
        writer.flush()
        job.rows_read = read
        errors.raise_if_any()
        job.rows_imported = len(seen)
        # Columns read under another name, and the columns kept as attributes: reported, never dropped.
        job.report = {
            "products_created": writer.created,
            "products_updated": writer.updated,
            "columns_mapped": columns.renamed(),
            "extra_columns": columns.extra,
        }

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
    # The API's value rules (shop_recs.catalog.validation): ids, text, numbers, time window, JSON.
    for name, ident in (("customer", customer), ("session_id", session), ("sku", sku)):
        if ident and not rules.is_valid_id(ident):
            raise ValueError(f"{name} {ident[:40]!r} must be {rules.ID_RULE}")
    if query and (problem := rules.text_problem(query)):
        raise ValueError(f"query {problem}")
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
    if value is not None and not -rules.VALUE_MAX <= value <= rules.VALUE_MAX:
        raise ValueError(f"value must be between {-rules.VALUE_MAX:.0f} and {rules.VALUE_MAX:.0f}")
    if quantity is not None and quantity <= 0:
        raise ValueError("quantity must be a positive whole number")
    timestamp = _parse_timestamp(get("timestamp"), tz)
    if problem := rules.timestamp_problem(timestamp, rules.earliest_timestamp(), rules.latest_timestamp(now())):
        raise ValueError(f"timestamp {problem}")
    context = None if raw_context == "" or raw_context is None else _parse_context(raw_context)
    if context and (problem := rules.json_problem(context)):
        raise ValueError(f"context {problem}")
    order_id = _check_length(_s(get("order_id")), 100, "order_id")
    if order_id and not rules.is_valid_id(order_id):
        raise ValueError(f"order_id {order_id[:40]!r} must be {rules.ID_RULE}")
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


class _EventWriter:
    """Resolves the pending events' skus and customers and writes them, chunk by chunk."""

    def __init__(self, store_id: int, errors: _Errors, progress: Progress | None) -> None:
        self.store_id = store_id
        self.errors = errors
        self.progress = progress
        self.pending = _PendingEvents()
        self.written = 0
        self.customers_created = 0
        self.by_type: dict[str, int] = {}
        # Ids resolved by earlier chunks: a file names the same customers and products again and
        # again, and looking them up once instead of per chunk took ~40% of the import's time.
        self.known: dict[str, int] = {}
        self.customer_ids: dict[str, int] = {}

    def add(self, line: int, customer: str, sku: str, rest: tuple) -> None:
        pending = self.pending
        pending.lines.append(line)
        pending.customers.append(customer)
        pending.skus.append(sku)
        pending.rest.append(rest)

    def flush(self) -> None:
        """Check the pending skus; write the chunk unless the file has errors (nothing is written then)."""
        pending, known = self.pending, self.known
        if not pending:
            return
        known.update(product_ids_by_sku(self.store_id, {s for s in pending.skus if s and s not in known}))
        for line, sku in zip(pending.lines, pending.skus, strict=True):
            if sku and sku not in known:
                self.errors.add(line, f"unknown sku {sku!r} (import the catalog first)")
        if not self.errors:
            self._write()
        if self.progress:
            self.progress(len(pending))
        pending.clear()

    def _write(self) -> None:
        pending, known, customer_ids = self.pending, self.known, self.customer_ids
        new_names = {c for c in pending.customers if c and c not in customer_ids}
        resolved, created = ensure_customers_counting(self.store_id, new_names)
        customer_ids.update(resolved)
        self.customers_created += created
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
            self.by_type[etype] = self.by_type.get(etype, 0) + 1
        self.written += write_events(self.store_id, out)


def _event_rows(path: Path, errors: _Errors) -> tuple[list[str] | None, Iterator[tuple[int, dict[str, Any]]]]:
    """The header (None for JSONL, where every line names its fields) and the rows of an events file."""
    if _is_jsonl(path):
        return None, _jsonl_rows(path, errors)
    return _csv_rows(path, errors, _check_event_header)


def import_events(
    store: Store,
    path: str | Path,
    *,
    file_name: str | None = None,
    created_by=None,
    progress: Progress | None = None,
    job: ImportJob | None = None,
) -> ImportJob:
    """Append events from a CSV or JSONL file; unknown customers are created, unknown skus are errors."""
    path = Path(path)
    # A dashboard upload's job row exists already (created queued, claimed by ``uploads``).
    job = job if job is not None else _start_job(store, ImportKind.EVENTS, path, file_name, created_by)
    tz = ZoneInfo(store.timezone or "UTC")

    def body(job: ImportJob) -> None:
        errors = _Errors()
        header, rows = _event_rows(path, errors)
        writer = _EventWriter(store.id, errors, progress)
        read = 0
        for line, raw in rows:
            read += 1
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
            writer.add(line, customer, sku, rest)
            if len(writer.pending) >= CHUNK_ROWS:
                writer.flush()
        writer.flush()
        job.rows_read = read
        errors.raise_if_any()
        if read == 0:
            raise ImportFailed([RowError(1, "the file has no event rows")])
        job.rows_imported = writer.written
        job.report = {
            "events_written": writer.written,
            "customers_created": writer.customers_created,
            "events_by_type": dict(sorted(writer.by_type.items())),
        }

    return _run_job(job, body, refuse_duplicates=True)
