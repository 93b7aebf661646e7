"""The value rules every ingestion path shares: the API, the CSV/JSONL importers and the seeder.

One place says what an id, a text, a number, a timestamp and a JSON object may be, so a value the
events API refuses is refused by the importers too, and no accepted value can later break a reader
(PostgreSQL refuses NUL bytes and lone surrogates in text, stores a year-1 timestamp as 1 BC that
Python cannot read back, and overflows ``float8`` sums of huge values).

It lives in ``catalog`` because that is the lowest ingestion package: ``activity`` and ``imports``
import it, ``catalog``'s own product cleaning uses it. Rules (docs/api.md, "Validation"):

* **ids** (sku, customer, session, order): 1..100 characters of ``A-Z a-z 0-9 . _ : @ -``. The set
  keeps ids safe in URL paths (no ``/``, ``?``, ``#``, ``%``), in comma-separated ``exclude`` lists
  and in CSV cells.
* **text**: no NUL byte and no lone surrogate (neither can be stored as UTF-8 text).
* **numbers**: finite; an event ``value`` within ±``VALUE_MAX`` (the product price column's range),
  a quantity 1..``INT32_MAX``.
* **timestamps**: aware, not before ``settings.EVENT_TIMESTAMP_MIN`` and not more than
  ``settings.EVENT_FUTURE_TOLERANCE_SECONDS`` after now.
* **JSON objects** (event ``context``, product ``attributes``): at most ``JSON_MAX_DEPTH`` levels,
  the text rule for every key and string, finite numbers, integers within ±2**63.
* **URLs** (product ``url`` and ``image_url``): at most ``URL_MAX_LENGTH`` characters, ``http`` or
  ``https`` only (a ``javascript:`` or ``data:`` URL in a shop's card is a script or a payload, not
  a link), no spaces or control characters, and a valid host (Django's ``URLValidator``).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db.models import Q
from django.utils import timezone

__all__ = [
    "ID_MAX_LENGTH",
    "ID_RULE",
    "INT32_MAX",
    "JSON_MAX_DEPTH",
    "PRICE_MAX",
    "URL_MAX_LENGTH",
    "VALUE_MAX",
    "earliest_timestamp",
    "id_problem",
    "is_valid_id",
    "json_problem",
    "latest_timestamp",
    "readable_events_q",
    "text_problem",
    "timestamp_problem",
    "url_problem",
]

ID_MAX_LENGTH = 100
ID_RULE = "1-100 characters from A-Z a-z 0-9 . _ : @ -"
_ID_RE = re.compile(r"[A-Za-z0-9._:@-]{1,100}")
_id_fullmatch = _ID_RE.fullmatch
# NUL, or a UTF-16 surrogate code point (only a lone one can reach a Python str).
_BAD_TEXT_RE = re.compile("[\x00\ud800-\udfff]")
_bad_text_search = _BAD_TEXT_RE.search

INT32_MAX = 2_147_483_647
PRICE_MAX = Decimal("9999999999.99")  # Product.price: max_digits=12, decimal_places=2
VALUE_MAX = 1e10  # an event value (unit price, rating, quantity) stays within the price column's range
JSON_MAX_DEPTH = 32
_JSON_INT_MAX = 2**63  # jsonb stores numbers as numeric, but readers turn them into int64/float64
URL_MAX_LENGTH = 1000  # Product.url and Product.image_url: max_length=1000
# C0 and C1 control characters and any whitespace: a browser strips or rewrites them, so the stored
# URL would not be the one followed (and "java\tscript:" is an old filter bypass).
_URL_BAD_CHAR_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\s]")
_URL_SCHEMES = ("http", "https")
_url_validator = URLValidator(schemes=list(_URL_SCHEMES))


def is_valid_id(value: object) -> bool:
    """True for a str that is 1..100 characters of the id set."""
    return type(value) is str and _id_fullmatch(value) is not None


def id_problem(value: object) -> str | None:
    """Why ``value`` is not a valid id, or ``None``."""
    if type(value) is not str or not value:
        return "must be a non-empty string of at most 100 characters"
    if len(value) > ID_MAX_LENGTH:
        return "must be a non-empty string of at most 100 characters"
    if _id_fullmatch(value) is None:
        return f"must be {ID_RULE}"
    return None


def text_problem(value: str) -> str | None:
    """Why the text ``value`` cannot be stored (NUL byte, lone surrogate), or ``None``."""
    found = _bad_text_search(value)
    if found is None:
        return None
    return "must not contain NUL bytes" if found.group() == "\x00" else "must not contain lone surrogates"


def url_problem(value: object, max_length: int = URL_MAX_LENGTH) -> str | None:
    """Why ``value`` is not an acceptable product or image URL, or ``None`` (``""`` means "none" and is fine)."""
    if type(value) is not str:
        return "must be a string"
    if not value:
        return None
    if len(value) > max_length:
        return f"must be at most {max_length} characters (got {len(value)})"
    if _URL_BAD_CHAR_RE.search(value):
        return "must not contain spaces or control characters"
    if problem := text_problem(value):
        return problem
    scheme = value.partition(":")[0].lower() if ":" in value else ""
    if scheme not in _URL_SCHEMES:
        return "must start with http:// or https://"
    try:
        _url_validator(value)
    except ValidationError:
        return "must be a valid http(s) URL with a host name"
    return None


def json_problem(value: Any, depth: int = 0) -> str | None:
    """Why a JSON value (context, attributes) cannot be stored and read back safely, or ``None``."""
    if depth > JSON_MAX_DEPTH:
        return f"is nested deeper than {JSON_MAX_DEPTH} levels"
    kind = type(value)
    if kind is str:
        return text_problem(value)
    if kind is float:
        return None if math.isfinite(value) else "must contain finite numbers only"
    if kind is int:
        return None if -_JSON_INT_MAX < value < _JSON_INT_MAX else "contains an integer out of range"
    if kind is dict:
        for key, item in value.items():
            problem = (text_problem(key) if type(key) is str else None) or json_problem(item, depth + 1)
            if problem:
                return problem
        return None
    if kind is list:
        for item in value:
            problem = json_problem(item, depth + 1)
            if problem:
                return problem
        return None
    return None  # bool, None


def earliest_timestamp() -> datetime:
    """The oldest accepted event time (``EVENT_TIMESTAMP_MIN``, midnight UTC)."""
    day = settings.EVENT_TIMESTAMP_MIN
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def latest_timestamp(now: datetime) -> datetime:
    """The newest accepted event time: ``now`` plus the documented clock skew."""
    # Client clocks drift; an event a few minutes "in the future" is normal, one days ahead is a bug.
    return now + timedelta(seconds=settings.EVENT_FUTURE_TOLERANCE_SECONDS)


def timestamp_problem(ts: datetime, earliest: datetime, latest: datetime) -> str | None:
    """Why the aware ``ts`` is outside the accepted window, or ``None``."""
    if ts.tzinfo is None or ts.utcoffset() is None:
        return "must include a time zone (e.g. 'Z' or '+02:00')"
    if ts > latest:
        return "is in the future"
    if ts < earliest:
        return f"is before {earliest:%Y-%m-%d} (EVENT_TIMESTAMP_MIN)"
    return None


def readable_events_q(now: datetime | None = None) -> Q:
    """The event rows a reader can use: a timestamp inside the window above and a ``value`` within
    ±``VALUE_MAX`` (or none).

    Rows stored before these rules may hold what they now refuse (a year-1 timestamp PostgreSQL
    keeps as 1 BC and Python cannot read back, 1e308 whose sums overflow): every reader of events
    (the overview, the customer and profile pages, profile runs) filters with this and skips them.
    The future bound is generous (a day past the clock skew) so a reader never hides a row the
    API has just accepted.
    """
    latest = latest_timestamp(now or timezone.now()) + timedelta(days=1)
    value_ok = Q(value__isnull=True) | Q(value__gte=-VALUE_MAX, value__lte=VALUE_MAX)
    return Q(timestamp__gte=earliest_timestamp(), timestamp__lte=latest) & value_ok
