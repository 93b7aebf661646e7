"""The UCI Online Retail importer: products, customers and purchase events from the public log.

Every row gets exactly one outcome (:data:`UCI_OUTCOMES`); see ``docs/importers.md`` for the rules.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shop_recs.activity.ingest import ensure_customers_counting, product_ids_by_sku
from shop_recs.activity.models import Customer, EventType
from shop_recs.catalog.services import upsert_products
from shop_recs.imports.csv_importers import PRODUCT_CHUNK
from shop_recs.imports.jobs import (
    MAX_REPORTED_ERRORS,
    ImportFailed,
    Progress,
    RowError,
    _Errors,
    _result_count,
    _run_job,
    _start_job,
    write_event_batches,
)
from shop_recs.imports.models import ImportJob, ImportKind
from shop_recs.stores.models import Store

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
    df = _read_uci(path)
    n = len(df)
    job.rows_read = n
    cols = _uci_columns(df)
    _check_uci_rows(df, cols)
    outcome = _uci_outcomes(cols)
    counts = {name: int(c) for name, c in outcome.value_counts().items()}
    outcomes = {name: counts.get(name, 0) for name, _ in UCI_OUTCOMES}
    if progress:
        progress(0)

    keep = outcome.isin(UCI_IMPORTED).to_numpy()
    sold = pd.DataFrame({name: col[keep] for name, col in cols.items()})
    sold["qty"] = sold["qty"].astype("int64")
    products = _uci_products(store, sold)
    customers = _uci_customers(store, sold)
    is_guest = sold["customer"].eq("")
    written = _uci_events(store, sold, products["ids"], customers["ids"], progress)

    job.rows_imported = written
    job.skipped = {name: outcomes[name] for name, _ in UCI_OUTCOMES[1:6] if outcomes[name]}
    job.rows_skipped = sum(job.skipped.values())
    job.report = {
        "outcomes": outcomes,
        "outcome_help": dict(UCI_OUTCOMES),
        "products_created": products["created"],
        "products_updated": products["updated"],
        "customers": len(customers["ids"]),
        "customers_created": customers["created"],
        "customer_countries_set": customers["countries_set"],
        "events_written": written,
        "invoices": int(sold["invoice"].nunique()),
        "guest_invoices": int(sold.loc[is_guest, "invoice"].nunique()),
        "products_with_conflicting_descriptions": products["conflicting"],
        "first_timestamp": sold["when"].min().isoformat() if len(sold) else None,
        "last_timestamp": sold["when"].max().isoformat() if len(sold) else None,
    }
    assert sum(outcomes.values()) == n, "every row must have exactly one outcome"


def _read_uci(path: Path) -> pd.DataFrame:
    """The file as strings; ``ImportFailed`` if it is not a CSV with the UCI columns."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, compression="infer")
    except (ValueError, UnicodeDecodeError, OSError, pd.errors.ParserError) as exc:
        raise ImportFailed([RowError(1, f"cannot parse the file as CSV: {exc}")])
    missing = [c for c in UCI_COLUMNS if c not in df.columns]
    if missing:
        raise ImportFailed([RowError(1, f"missing column(s): {', '.join(missing)}")])
    return df


def _uci_columns(df: pd.DataFrame) -> dict[str, pd.Series]:
    """The parsed columns (NaN/NaT where a value does not parse), named as in the ``sold`` frame."""
    return {
        "invoice": df["InvoiceNo"].str.strip(),
        "sku": df["StockCode"].str.strip().str.upper(),
        "desc": df["Description"].str.strip().str.replace(r"\s+", " ", regex=True),
        "qty": pd.to_numeric(df["Quantity"], errors="coerce"),
        "price": pd.to_numeric(df["UnitPrice"], errors="coerce"),
        "when": pd.to_datetime(df["InvoiceDate"].str.strip(), format="%Y-%m-%d %H:%M:%S", errors="coerce", utc=True),
        "customer": df["CustomerID"].str.strip().str.replace(r"\.0+$", "", regex=True),
        "country": df["Country"].str.strip(),
    }


def _check_uci_rows(df: pd.DataFrame, cols: dict[str, pd.Series]) -> None:
    """``ImportFailed`` listing the malformed rows, if any."""
    invoice, code, qty, price, when = cols["invoice"], cols["sku"], cols["qty"], cols["price"], cols["when"]
    bad_qty = qty.isna() | (qty.fillna(0) % 1 != 0)
    bad = bad_qty | price.isna() | when.isna() | invoice.eq("") | code.eq("")
    bad |= ~cols["customer"].str.fullmatch(r"\d*")
    if not bad.any():
        return
    lines = np.arange(len(df)) + 2  # header is line 1; the UCI file has no multi-line fields
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


def _uci_outcomes(cols: dict[str, pd.Series]) -> pd.Series:
    """Each row's outcome name: the first of :data:`UCI_OUTCOMES` that applies (rows are well-formed)."""
    invoice, code = cols["invoice"], cols["sku"]
    non_product = code.isin(UCI_NON_PRODUCT_CODES) | code.str.startswith(UCI_NON_PRODUCT_PREFIXES)
    conditions = [
        non_product,
        invoice.str.startswith("C"),
        ~invoice.str.fullmatch(r"\d+"),
        cols["qty"] <= 0,
        cols["price"] <= 0,
        cols["customer"].ne(""),
    ]
    labels = [name for name, _ in UCI_OUTCOMES[1:-1]]
    return pd.Series(np.select(conditions, labels, default="guest_purchase"), index=invoice.index)


def _uci_products(store: Store, sold: pd.DataFrame) -> dict[str, Any]:
    """Upsert one product per stock code; its ids by sku, created/updated counts and conflicts.

    Title = the description used most often on this code's sales lines (ties: the alphabetically
    first) -- the variants are typos, abbreviations and re-wordings of one item, and the most used
    one is what customers saw most; the others are kept in attributes.
    """
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
    return {
        "ids": product_ids_by_sku(store.id, median_price.index.tolist()),
        "created": created,
        "updated": updated,
        "conflicting": len(alternates),
    }


def _uci_customers(store: Store, sold: pd.DataFrame) -> dict[str, Any]:
    """Ensure the known customers exist with their country: ids by external id and counts.

    Customers: "17850.0" -> "17850"; country = the one on most of their lines.
    """
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
    return {"ids": customer_ids, "created": customers_created, "countries_set": len(changed)}


def _uci_events(
    store: Store,
    sold: pd.DataFrame,
    product_ids: dict[str, int],
    customer_ids: dict[str, int],
    progress: Progress | None,
) -> int:
    """Write the purchase events, one per invoice line, in file order; the number written."""
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
    purchase = EventType.PURCHASE.value
    rows = (
        (cust, sess, purchase, prod, value, quantity, order, None, ts, None)
        for cust, sess, prod, value, quantity, order, ts in columns
    )
    return write_event_batches(store.id, rows, progress)
