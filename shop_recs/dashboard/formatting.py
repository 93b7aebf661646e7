"""Numbers and money in the reader's locale (what the dashboard's ``num`` and ``money`` filters show).

Separators come from Django's locale formats (``FORMAT_MODULE_PATH``: zh-Hans groups by three with a
comma, see ``dashboard/formats/zh_Hans``). Money carries the store's currency as the locale writes it,
the way CLDR (Babel, ICU) does for the currencies shops use: "$1,234.50" in English and "US$1,234.50"
in Chinese for dollars, "¥1,234.50" for yuan in Chinese and "CN¥1,234.50" in English; a currency
without a symbol here is written with its ISO code after the amount ("1,234.50 CHF").
"""

from __future__ import annotations

import math
from decimal import Decimal

from django.utils.formats import number_format
from django.utils.translation import get_language

#: currency -> (symbol in English, symbol in Chinese). CLDR's narrow-enough forms for a dashboard.
SYMBOLS: dict[str, tuple[str, str]] = {
    "USD": ("$", "US$"),
    "EUR": ("€", "€"),
    "GBP": ("£", "£"),
    "CNY": ("CN¥", "¥"),
    "JPY": ("¥", "JP¥"),
    "HKD": ("HK$", "HK$"),
    "TWD": ("NT$", "NT$"),
    "AUD": ("A$", "AU$"),
    "CAD": ("CA$", "CA$"),
    "KRW": ("₩", "￦"),
    "INR": ("₹", "₹"),
}
#: ISO 4217 minor units that are not 2.
DECIMALS = {"JPY": 0, "KRW": 0, "TWD": 2, "HUF": 2, "CLP": 0, "ISK": 0, "VND": 0, "BHD": 3, "KWD": 3}


def _chinese(language: str | None) -> bool:
    return (language or get_language() or "").lower().startswith("zh")


def format_number(value: int | float | Decimal | None, decimals: int | None = None) -> str:
    """``value`` with the locale's thousands separator (and ``decimals`` places when given); "–" if none."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return number_format(value, decimals, force_grouping=True)


def format_money(value: int | float | Decimal | None, currency: str = "", language: str | None = None) -> str:
    """``value`` in ``currency`` as the active (or given) language writes it."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    code = (currency or "").upper()
    try:
        amount = Decimal(str(value))
    except ArithmeticError:  # decimal.InvalidOperation: a text such as "< 5" (a hidden small figure) stays as it is
        return str(value)
    if not amount.is_finite():
        return "–"
    digits = DECIMALS.get(code, 2)
    text = number_format(abs(amount), digits, force_grouping=True, use_l10n=True)
    sign = "-" if amount < 0 and text.strip("0.,") else ""
    symbols = SYMBOLS.get(code)
    if symbols is None:
        return f"{sign}{text} {code}".strip()
    return f"{sign}{symbols[1] if _chinese(language) else symbols[0]}{text}"
