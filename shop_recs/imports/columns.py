"""Catalog file columns: which header names mean which product field, and the cell parsers for the
values shops export in their own words (availability phrases, prices with a currency).

A catalog CSV rarely uses our names: spreadsheet exports say ``image`` or ``img``, storefronts say
``link`` or ``product_url``, and a Google Merchant Center feed says ``id``, ``link``, ``image_link``,
``availability`` ("in stock") and ``price`` ("12.50 USD"). :func:`map_columns` resolves a header to
product fields (first alias present wins, in the order below); every other column is kept in the
product's ``attributes`` and listed in the import report, never dropped. Rules: ``docs/importers.md``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from shop_recs.catalog import validation as rules

__all__ = [
    "COLUMN_ALIASES",
    "ColumnMap",
    "map_columns",
    "normalise_header",
    "parse_in_stock",
    "parse_price",
]

#: Product field -> the header names that mean it, in order of preference (our own name first).
#: ``product_type`` (the shop's own path) comes before ``google_product_category`` (Google's
#: taxonomy): when a feed has both, the second is kept as an attribute.
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "sku": ("sku", "id", "product_id", "item_id"),
    "title": ("title", "product_name"),
    "description": ("description", "product_description"),
    "category": ("category", "product_type", "google_product_category", "category_path"),
    "brand": ("brand", "manufacturer"),
    "tags": ("tags", "keywords"),
    "price": ("price",),
    "currency": ("currency", "currency_code"),
    "image_url": ("image_url", "image_link", "image", "imageurl", "img", "img_url", "picture", "thumbnail"),
    "url": ("url", "link", "product_url", "producturl", "product_link", "page", "page_url"),
    "is_active": ("is_active", "active", "enabled"),
    "in_stock": ("in_stock", "availability", "stock", "instock", "available", "stock_status", "quantity"),
}

_SEPARATORS = re.compile(r"[\s\-.]+")


def normalise_header(name: str) -> str:
    """'Image Link' -> 'image_link', 'g:image_link' -> 'image_link' (XML feeds exported as CSV)."""
    name = name.strip().lower()
    name = name.removeprefix("g:")
    return _SEPARATORS.sub("_", name).strip("_")


@dataclass
class ColumnMap:
    """A file's header resolved: ``source[field]`` is the header column read for that product field."""

    source: dict[str, str] = field(default_factory=dict)
    #: Columns that are no product field (or a second alias of a field already read): attributes.
    extra: list[str] = field(default_factory=list)

    def renamed(self) -> dict[str, str]:
        """The columns read under another name ({"link": "url", ...}), for the import report."""
        return {col: name for name, col in self.source.items() if col != name}


def map_columns(header: list[str]) -> ColumnMap:
    """Resolve ``header`` (already lower-cased by the CSV reader) to product fields."""
    by_key: dict[str, str] = {}
    for column in header:
        if column:
            by_key.setdefault(normalise_header(column), column)
    out = ColumnMap()
    for name, aliases in COLUMN_ALIASES.items():
        for alias in aliases:
            if alias in by_key:
                out.source[name] = by_key[alias]
                break
    used = set(out.source.values())
    out.extra = [c for c in header if c and c not in used]
    return out


# --- availability ----------------------------------------------------------------------------

_IN_STOCK_WORDS = frozenset(
    {"true", "yes", "y", "t", "in stock", "instock", "available", "limited availability", "limitedavailability"}
)
# Pre-order and back-order: the shopper cannot have it now, and serving's out-of-stock rule is
# about "can I get it now", so these count as out of stock.
_OUT_OF_STOCK_WORDS = frozenset(
    {
        "false",
        "no",
        "n",
        "f",
        "out of stock",
        "outofstock",
        "sold out",
        "soldout",
        "unavailable",
        "not available",
        "discontinued",
        "preorder",
        "pre order",
        "backorder",
        "back order",
    }
)
_SCHEMA_ORG = re.compile(r"^https?://schema\.org/", re.IGNORECASE)
_QUANTITY = re.compile(r"^[+-]?\d+(\.0+)?$")


def parse_in_stock(raw: str, column: str, default: bool = True) -> bool:
    """'in stock' / 'out of stock' / 'preorder', yes/no, true/false, 1/0, a quantity (> 0 is in stock),
    or schema.org's ``https://schema.org/InStock``. Blank is ``default``. ``ValueError`` otherwise."""
    value = raw.strip()
    if not value:
        return default
    if _QUANTITY.match(value):  # a stock count; a negative one (oversold) is out of stock
        return float(value) > 0
    word = _SCHEMA_ORG.sub("", value).lower().replace("_", " ").replace("-", " ")
    word = " ".join(word.split())
    if word in _IN_STOCK_WORDS:
        return True
    if word in _OUT_OF_STOCK_WORDS:
        return False
    raise ValueError(
        f"{column}: {value[:40]!r} is not an availability "
        "(use in stock / out of stock / preorder, yes / no, 1 / 0 or a stock quantity)"
    )


# --- price -----------------------------------------------------------------------------------

#: Unambiguous currency symbols. "$", "¥" and "kr" name several currencies: they are read as the
#: store's currency when it is one of those, and are an error otherwise (write the code instead).
_SYMBOLS = {"€": "EUR", "£": "GBP", "₹": "INR", "₩": "KRW", "₽": "RUB", "₺": "TRY", "₪": "ILS", "zł": "PLN",
            "R$": "BRL", "US$": "USD", "A$": "AUD", "C$": "CAD", "NZ$": "NZD", "HK$": "HKD", "S$": "SGD",
            "元": "CNY", "RMB": "CNY", "￥": "CNY"}  # fmt: skip
_AMBIGUOUS = {
    "$": ("USD", "CAD", "AUD", "NZD", "HKD", "SGD", "MXN", "TWD"),
    "¥": ("CNY", "JPY"),
    "kr": ("SEK", "NOK", "DKK", "ISK"),
}
_SYMBOL_ALT = "|".join(re.escape(s) for s in sorted([*_SYMBOLS, *_AMBIGUOUS], key=len, reverse=True))
_LEADING = re.compile(rf"^(?P<cur>[A-Za-z]{{3}}|{_SYMBOL_ALT})\s*(?P<num>.*)$")
_TRAILING = re.compile(rf"^(?P<num>.*?)\s*(?P<cur>[A-Za-z]{{3}}|{_SYMBOL_ALT})$")
# Thousands separators: spaces (incl. no-break and thin), apostrophes (Swiss "1'234.50").
_GROUPING = re.compile(r"[\s\u00a0\u202f'’]")
_PLAIN_NUMBER = re.compile(r"^\d+(\.\d+)?$")
_GROUPED = re.compile(r"^\d{1,3}( \d{3})+$")


def _split_currency(value: str) -> tuple[str, str | None]:
    """('12.50', 'USD') from '12.50 USD', 'USD 12.50', '$12.50', '12,50 €'; (value, None) without one."""
    for pattern in (_LEADING, _TRAILING):
        found = pattern.match(value)
        if found and found.group("num").strip():
            return found.group("num").strip(), found.group("cur")
    return value, None


def _currency_code(mark: str, column: str, store_currency: str) -> str:
    if mark in _SYMBOLS:
        return _SYMBOLS[mark]
    if mark in _AMBIGUOUS:
        if store_currency in _AMBIGUOUS[mark]:
            return store_currency
        raise ValueError(
            f"{column}: {mark!r} is used by several currencies ({', '.join(_AMBIGUOUS[mark])}); "
            "write the code instead, e.g. '12.50 USD'"
        )
    return mark.upper()


def _number(text: str) -> str:
    """'1.234,56' -> '1234.56', '12,50' -> '12.50', '1,234.56' -> '1234.56', '1 234' -> '1234'.

    The last of ``.``/``,`` is the decimal mark when both appear; a lone ``,`` is a decimal mark when
    one or two digits follow it (a price has at most two decimals), else it groups thousands.
    Grouped digits must come in threes ("12.5.6,7" is no number); anything else is returned as it is
    for the caller to refuse.
    """
    text = _GROUPING.sub("", text)
    if "," in text and "." in text:
        decimal_mark = "," if text.rfind(",") > text.rfind(".") else "."
    elif "," in text:
        tail = text.rpartition(",")[2]
        decimal_mark = "," if text.count(",") == 1 and 1 <= len(tail) <= 2 else None
    elif text.count(".") > 1:  # "1.234.567": dots group thousands
        decimal_mark = None
    else:
        return text
    grouping = "." if decimal_mark == "," else ","
    whole, _, decimals = text.rpartition(decimal_mark) if decimal_mark else (text, "", "")
    if grouping in whole and not _GROUPED.match(whole.replace(grouping, " ")):
        return text
    whole = whole.replace(grouping, "")
    return f"{whole}.{decimals}" if decimal_mark else whole


def parse_price(raw: str, column: str, store_currency: str) -> tuple[Decimal | None, str | None]:
    """The price and the currency written with it: '12.50 USD', 'USD 12.50', '€12,50', '1.234,56 €',
    '12.50'. Blank is ``(None, None)``. ``ValueError`` naming ``column`` for anything else: a
    negative or too large price, more than two decimals, an unknown or ambiguous currency mark."""
    value = raw.strip()
    if not value:
        return None, None
    if len(value) > 40:
        raise ValueError(f"{column}: {value[:40]!r}... is not a price")
    number_text, mark = _split_currency(value)
    currency = _currency_code(mark, column, store_currency) if mark else None
    number_text = _number(number_text)
    if number_text.startswith("-"):
        raise ValueError(f"{column}: {value!r} is negative (a price must be >= 0)")
    if not _PLAIN_NUMBER.match(number_text):
        raise ValueError(f"{column}: {value!r} is not a price (e.g. 12.50, 12,50, '12.50 USD' or '€12.50')")
    try:
        price = Decimal(number_text)
    except InvalidOperation:  # the pattern above lets only digits and one dot through; kept for safety
        raise ValueError(f"{column}: {value!r} is not a price") from None
    if price != price.quantize(Decimal("0.01")):
        raise ValueError(f"{column}: {value!r} has more than 2 decimal places")
    if price > rules.PRICE_MAX:
        raise ValueError(f"{column}: {value!r} is larger than {rules.PRICE_MAX}")
    return price.quantize(Decimal("0.01")), currency
