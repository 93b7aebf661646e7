"""Catalog writes: product upserts and the category tree. Shared by the REST API and the importers.

Validation is a hand-written, pure-Python pass (``clean_product_rows``) rather than a DRF
serializer per row: a 5,000-row bulk upsert must stay fast, and the same rules serve the API and
the importers. The DRF serializers in ``serializers.py`` describe the same schema for the docs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, TypedDict

from django.db import transaction
from django.utils import timezone

from shop_recs.catalog import validation as rules
from shop_recs.catalog.models import CATEGORY_PATH_SEPARATOR, Category, Product
from shop_recs.stores.models import Store

__all__ = [
    "RowError",
    "InvalidRows",
    "UpsertResult",
    "PRODUCT_FIELDS",
    "check_batch_shape",
    "clean_product_rows",
    "normalize_category_path",
    "ensure_category_path",
    "upsert_products",
    "deactivate_product",
]


class RowError(TypedDict):
    """One problem in a submitted batch: which row, which field, and why."""

    index: int
    field: str
    reason: str


class InvalidRows(Exception):  # noqa: N818 - reads better at the call sites than InvalidRowsError
    """A batch failed validation as a whole; ``errors`` lists every bad row, nothing was written."""

    def __init__(self, errors: list[RowError], code: str = "invalid_rows"):
        super().__init__(f"{len(errors)} invalid row(s)")
        self.errors = errors
        # invalid_rows (row problems), or a body-level code: invalid_body, empty_batch, batch_too_large.
        self.code = code


@dataclass
class UpsertResult:
    """What an upsert did. ``skus`` keeps the input order."""

    created: int = 0
    updated: int = 0
    skus: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return self.created + self.updated


# Field -> default applied when a row omits it: an upsert replaces the whole product (PUT semantics).
PRODUCT_FIELDS: dict[str, Any] = {
    "title": None,
    "description": "",
    "category": None,
    "brand": "",
    "tags": list,
    "price": None,
    "currency": None,  # None -> the store's default currency
    "image_url": "",
    "url": "",
    "is_active": True,
    "in_stock": True,
    "attributes": dict,
}
_ALLOWED_KEYS = frozenset(PRODUCT_FIELDS) | {"sku"}
_CURRENCY_RE = re.compile(r"^[A-Za-z]{3}$")
_PRICE_MAX = rules.PRICE_MAX  # max_digits=12, decimal_places=2


def normalize_category_path(path: str) -> str:
    """'Home>Kitchen >  Mugs' -> 'Home > Kitchen > Mugs'. Raises ValueError on an empty node."""
    parts = [p.strip() for p in path.split(">")]
    if not parts or any(not p for p in parts):
        raise ValueError("category path has an empty node (use 'A > B > C')")
    if any(len(p) > 200 for p in parts):
        raise ValueError("a category name is longer than 200 characters")
    normalized = CATEGORY_PATH_SEPARATOR.join(parts)
    if len(normalized) > 1000:
        raise ValueError("category path is longer than 1000 characters")
    return normalized


def _check_str(row: dict, name: str, max_len: int, errors: list, index: int, required: bool = False) -> None:
    value = row.get(name)
    if value is None:
        if required:
            errors.append({"index": index, "field": name, "reason": "this field is required"})
        return
    if not isinstance(value, str):
        errors.append({"index": index, "field": name, "reason": "must be a string"})
    elif required and not value.strip():
        errors.append({"index": index, "field": name, "reason": "must not be blank"})
    elif len(value) > max_len:
        errors.append({"index": index, "field": name, "reason": f"at most {max_len} characters"})
    elif problem := rules.text_problem(value):
        errors.append({"index": index, "field": name, "reason": problem})


def check_batch_shape(rows: object, max_rows: int | None, noun: str) -> None:
    """``InvalidRows`` (with a body-level code) unless ``rows`` is a non-empty list of at most ``max_rows``."""
    if not isinstance(rows, list):
        raise InvalidRows([{"index": -1, "field": "body", "reason": f"expected a JSON list of {noun}"}], "invalid_body")
    if not rows:
        raise InvalidRows([{"index": -1, "field": "body", "reason": "the list is empty"}], "empty_batch")
    if max_rows is not None and len(rows) > max_rows:
        raise InvalidRows(
            [{"index": -1, "field": "body", "reason": f"at most {max_rows} {noun} per request"}], "batch_too_large"
        )


def clean_product_rows(rows: object, *, max_rows: int | None = None) -> list[dict]:
    """Validate a list of product dicts as a whole and return them normalised.

    Raises ``InvalidRows`` listing every bad row (by index, field and reason). A row-level problem
    that is not about one field uses ``field="non_field_errors"``; a problem with the body itself
    uses index -1.
    """
    check_batch_shape(rows, max_rows, "products")
    errors: list[RowError] = []
    cleaned: list[dict] = []
    seen: dict[str, int] = {}
    for i, row in enumerate(rows):  # type: ignore[arg-type]
        if not isinstance(row, dict):
            errors.append({"index": i, "field": "non_field_errors", "reason": "expected an object"})
            continue
        out = _clean_product_row(row, i, seen, errors)
        if out is not None:
            cleaned.append(out)
    if errors:
        raise InvalidRows(errors)
    return cleaned


def _clean_product_row(row: dict, i: int, seen: dict[str, int], errors: list[RowError]) -> dict | None:
    """Append row ``i``'s problems to ``errors``; the normalised row if it has none."""
    n_before = len(errors)
    for key in sorted(row.keys() - _ALLOWED_KEYS, key=str):
        errors.append({"index": i, "field": str(key), "reason": "unknown field"})
    sku = row.get("sku")
    _check_str(row, "sku", 100, errors, i, required=True)
    if isinstance(sku, str) and "/" in sku:
        errors.append({"index": i, "field": "sku", "reason": "must not contain '/'"})
    elif isinstance(sku, str) and sku.strip() and len(sku) <= rules.ID_MAX_LENGTH and not rules.is_valid_id(sku):
        errors.append({"index": i, "field": "sku", "reason": f"must be {rules.ID_RULE}"})
    if isinstance(sku, str) and sku in seen:
        errors.append({"index": i, "field": "sku", "reason": f"duplicate of row {seen[sku]}"})
    elif isinstance(sku, str):
        seen[sku] = i
    _check_str(row, "title", 500, errors, i, required=True)
    _check_str(row, "description", 100_000, errors, i)
    _check_str(row, "brand", 200, errors, i)

    category = _clean_category(row.get("category"), errors, i)
    tags = row.get("tags")
    if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)):
        errors.append({"index": i, "field": "tags", "reason": "must be a list of strings"})
    elif tags and (problem := rules.json_problem(tags)):
        errors.append({"index": i, "field": "tags", "reason": problem})
    attributes = row.get("attributes")
    if attributes is not None and not isinstance(attributes, dict):
        errors.append({"index": i, "field": "attributes", "reason": "must be an object"})
    elif attributes and (problem := rules.json_problem(attributes)):
        errors.append({"index": i, "field": "attributes", "reason": problem})
    price = _clean_price(row.get("price"), errors, i)
    currency = row.get("currency")
    if currency is not None:
        if not isinstance(currency, str) or not _CURRENCY_RE.fullmatch(currency):
            errors.append({"index": i, "field": "currency", "reason": "must be a 3-letter code like 'EUR'"})
        else:
            currency = currency.upper()
    for name in ("image_url", "url"):
        if (value := row.get(name)) is not None and (problem := rules.url_problem(value)):
            errors.append({"index": i, "field": name, "reason": problem})
    for flag in ("is_active", "in_stock"):
        if flag in row and not isinstance(row[flag], bool):
            errors.append({"index": i, "field": flag, "reason": "must be true or false"})

    if len(errors) != n_before:
        return None
    out: dict[str, Any] = {"sku": sku}
    for name, default in PRODUCT_FIELDS.items():
        value = row.get(name)
        out[name] = (default() if callable(default) else default) if value is None else value
    out.update(category=category, price=price, currency=currency)
    return out


def _clean_category(category: Any, errors: list[RowError], i: int) -> Any:
    """The normalised path (None when blank); the raw value, with an error, when it is not valid."""
    if category is None:
        return None
    if not isinstance(category, str):
        errors.append({"index": i, "field": "category", "reason": "must be a path string like 'A > B'"})
        return category
    if problem := rules.text_problem(category):
        errors.append({"index": i, "field": "category", "reason": problem})
        return category
    if not category.strip():
        return None
    try:
        return normalize_category_path(category)
    except ValueError as exc:
        errors.append({"index": i, "field": "category", "reason": str(exc)})
        return category


def _clean_price(price: Any, errors: list[RowError], i: int) -> Decimal | None:
    """The price as a ``Decimal`` (None if absent, blank or not a number); errors for bad values."""
    if price is None or (isinstance(price, str) and not price.strip()):
        # Blank means "no price", as the schema (a nullable decimal string) and the importers allow.
        return None
    if isinstance(price, bool) or not isinstance(price, (int, float, str)):
        errors.append({"index": i, "field": "price", "reason": "must be a number"})
        return None
    if isinstance(price, str) and len(price) > 40:
        # Decimal() of a 100,000-digit string is slow; no valid price is that long.
        errors.append({"index": i, "field": "price", "reason": "must be a number"})
        return None
    try:
        price = Decimal(str(price))
        if not price.is_finite():
            raise InvalidOperation
    except (InvalidOperation, ValueError):
        errors.append({"index": i, "field": "price", "reason": "must be a number"})
        return None
    if price < 0:
        errors.append({"index": i, "field": "price", "reason": "must be >= 0"})
    elif price > _PRICE_MAX:
        errors.append({"index": i, "field": "price", "reason": f"must be <= {_PRICE_MAX}"})
    elif price != price.quantize(Decimal("0.01")):
        errors.append({"index": i, "field": "price", "reason": "at most 2 decimal places"})
    return price


def ensure_category_path(store: Store, path: str) -> Category:
    """Return the category at ``path`` ("Home > Kitchen > Mugs"), creating missing nodes."""
    path = normalize_category_path(path)
    return _ensure_paths(store, [path])[path]


def _ensure_paths(store: Store, paths: list[str]) -> dict[str, Category]:
    """Resolve many category paths with one read, creating every missing node (parents first)."""
    wanted: set[str] = set()
    for path in paths:
        parts = path.split(CATEGORY_PATH_SEPARATOR)
        for depth in range(1, len(parts) + 1):
            wanted.add(CATEGORY_PATH_SEPARATOR.join(parts[:depth]))
    # The plain manager with an explicit store filter: importers call this outside a request scope.
    qs = Category.all_stores.filter(store=store)
    existing = {c.path: c for c in qs.filter(path__in=wanted)}
    for path in sorted(wanted - existing.keys(), key=lambda p: p.count(CATEGORY_PATH_SEPARATOR)):
        parent_path, _, name = path.rpartition(CATEGORY_PATH_SEPARATOR)
        # get_or_create tolerates a concurrent request creating the same node (unique store+path).
        existing[path], _ = qs.get_or_create(
            store=store, path=path, defaults={"name": name, "parent": existing.get(parent_path)}
        )
    return existing


_UPDATE_FIELDS = [*PRODUCT_FIELDS, "updated_at"]


def upsert_products(store: Store, rows: list[dict], *, max_rows: int | None = None) -> UpsertResult:
    """Create or replace products by sku, all in one transaction.

    ``rows`` are dicts with ``sku`` and the fields of ``PRODUCT_FIELDS``; they are validated here
    (``InvalidRows`` if any is bad, nothing written). Omitted fields take their defaults: an upsert
    describes the whole product. Category paths are created as needed.
    """
    cleaned = clean_product_rows(rows, max_rows=max_rows)
    skus = [r["sku"] for r in cleaned]
    with transaction.atomic():
        paths = {r["category"] for r in cleaned if r["category"]}
        categories = _ensure_paths(store, sorted(paths)) if paths else {}
        existing = set(Product.all_stores.filter(store=store, sku__in=skus).values_list("sku", flat=True))
        now = timezone.now()
        objs = []
        for r in cleaned:
            data = dict(r)
            data["category"] = categories.get(r["category"]) if r["category"] else None
            if data["currency"] is None:
                data["currency"] = store.currency if data["price"] is not None else ""
            objs.append(Product(store=store, created_at=now, updated_at=now, **data))
        # One INSERT ... ON CONFLICT (store_id, sku) DO UPDATE: atomic per row even when two
        # requests upsert the same sku concurrently; created_at is kept on update.
        Product.all_stores.bulk_create(
            sorted(objs, key=lambda p: p.sku),  # one lock order for concurrent upserts: no deadlock
            batch_size=500,
            update_conflicts=True,
            unique_fields=["store", "sku"],
            update_fields=_UPDATE_FIELDS,
        )
    return UpsertResult(created=len(skus) - len(existing), updated=len(existing), skus=skus)


def deactivate_product(store: Store, sku: str) -> Product | None:
    """Mark a product inactive (never deleted: its events are history). None if the sku is unknown."""
    product = Product.all_stores.filter(store=store, sku=sku).select_related("category").first()
    if product is None:
        return None
    if product.is_active:
        product.is_active = False
        product.save(update_fields=["is_active", "updated_at"])
    return product
