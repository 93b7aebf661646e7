"""Import reports and errors in the reader's language.

An import job stores plain data: report keys (``products_created``), skip reasons (``cancellation``)
and the importers' row errors as they wrote them (``price: 'abc' is not a number``). The pages name
the keys through :data:`REPORT_LABELS` / :data:`SKIP_REASONS`, and :func:`translate_message`
recognises every error text the importers write (a fixed set of templates: the ``PATTERNS`` below,
keyed like message codes) and renders it again with gettext, keeping the file's own values (a
column name, a quoted cell) as they are. Rows stored by any earlier version translate the same way;
a text no pattern knows is shown as it was stored, never dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

#: The report's keys, as the importers write them (csv_importers.py, uci.py).
REPORT_LABELS = {
    "products_created": gettext_lazy("Products created"),
    "products_updated": gettext_lazy("Products updated"),
    "columns_mapped": gettext_lazy("Columns read under another name"),
    "extra_columns": gettext_lazy("Extra columns kept as attributes"),
    "events_written": gettext_lazy("Events written"),
    "customers_created": gettext_lazy("Customers created"),
    "events_by_type": gettext_lazy("Events by type"),
    "outcomes": gettext_lazy("Rows by outcome"),
    "customers": gettext_lazy("Customers"),
    "customer_countries_set": gettext_lazy("Customer countries set"),
    "invoices": gettext_lazy("Invoices"),
    "guest_invoices": gettext_lazy("Guest invoices"),
    "products_with_conflicting_descriptions": gettext_lazy("Products with conflicting descriptions"),
    "first_timestamp": gettext_lazy("First timestamp"),
    "last_timestamp": gettext_lazy("Last timestamp"),
}

#: UCI row outcomes (``uci.UCI_OUTCOMES``) and event types, as report values and skip reasons.
SKIP_REASONS = {
    "imported": gettext_lazy("imported"),
    "malformed": gettext_lazy("unparseable quantity, price, date, invoice or stock code"),
    "non_product_code": gettext_lazy("postage, fees, discounts, manual adjustments, samples, gift vouchers"),
    "cancellation": gettext_lazy("cancellation invoice (InvoiceNo starts with C)"),
    "adjustment_invoice": gettext_lazy("accounting adjustment invoice (InvoiceNo starts with A)"),
    "non_positive_quantity": gettext_lazy("quantity zero or negative outside a cancellation"),
    "zero_price": gettext_lazy("zero price"),
    "guest": gettext_lazy("guest purchase (no customer id)"),
    "view": gettext_lazy("view"),
    "click": gettext_lazy("click"),
    "add_to_cart": gettext_lazy("add to cart"),
    "purchase": gettext_lazy("purchase"),
    "search": gettext_lazy("search"),
    "rating": gettext_lazy("rating"),
    "wishlist": gettext_lazy("wishlist"),
    "remove_from_cart": gettext_lazy("remove from cart"),
}


def report_label(key: str) -> str:
    """A report key's label in the active language (an unknown key as written, underscores as spaces)."""
    label = REPORT_LABELS.get(key) or SKIP_REASONS.get(key)
    return str(label) if label is not None else key.replace("_", " ")


_Render = Callable[[re.Match], str]


def _rule(pattern: str, render: _Render) -> tuple[re.Pattern, _Render]:
    return re.compile(pattern, re.S), render


# One entry per template the importers and the catalog validation write; the groups are the file's
# values (quoted cells, column names, numbers), passed through untranslated.
PATTERNS: dict[str, tuple[re.Pattern, _Render]] = {
    "rejected": _rule(
        r"The file was rejected and nothing was imported: (?P<n>\d+) error\(s\): (?P<head>.*?)"
        r"(?: \(and (?P<more>\d+) more\))?",
        lambda m: (
            _("The file was rejected and nothing was imported: %(n)s error(s): %(head)s")
            % {"n": m["n"], "head": translate_message(m["head"])}
            + (_(" (and %(n)s more)") % {"n": m["more"]} if m["more"] else "")
        ),
    ),
    "duplicate": _rule(
        r"This file was already imported(?: by import #(?P<id>\d+)(?: on (?P<when>[\d-]+ [\d:]+) UTC)?)?; "
        r"nothing was written\.",
        lambda m: (
            _("This file was already imported by import #%(id)s on %(when)s UTC; nothing was written.")
            % {"id": m["id"], "when": m["when"]}
            if m["when"]
            else _("This file was already imported by import #%(id)s; nothing was written.") % {"id": m["id"]}
            if m["id"]
            else _("This file was already imported; nothing was written.")
        ),
    ),
    "db_refused": _rule(
        r"The database refused the data; nothing was imported: (?P<detail>.*)",
        lambda m: _("The database refused the data; nothing was imported: %(detail)s") % {"detail": m["detail"]},
    ),
    "internal": _rule(
        r"Internal error; nothing was imported: (?P<detail>.*)",
        lambda m: _("Internal error; nothing was imported: %(detail)s") % {"detail": m["detail"]},
    ),
    "line": _rule(
        r"line (?P<line>\d+): (?P<msg>.*)",
        lambda m: _("line %(line)s: %(message)s") % {"line": m["line"], "message": translate_message(m["msg"])},
    ),
    # "<column>: '<cell>' <problem>" before the value rules, which would take "price: 'abc'" for the value.
    "column_value": _rule(
        r"(?P<col>[\w .-]+): (?P<problem>'.*)",
        lambda m: _("%(column)s: %(problem)s") % {"column": m["col"], "problem": translate_message(m["problem"])},
    ),
    "empty": _rule(r"(?P<what>[\w .-]+) is empty", lambda m: _("%(column)s is empty") % {"column": m["what"]}),
    "missing_required": _rule(
        r"missing required column\(s\): (?P<cols>.*)",
        lambda m: _("missing required column(s): %(columns)s") % {"columns": m["cols"]},
    ),
    "missing": _rule(
        r"missing column\(s\): (?P<cols>.*)", lambda m: _("missing column(s): %(columns)s") % {"columns": m["cols"]}
    ),
    "duplicate_columns": _rule(
        r"duplicate column\(s\): (?P<cols>.*)", lambda m: _("duplicate column(s): %(columns)s") % {"columns": m["cols"]}
    ),
    "unknown_fields": _rule(
        r"unknown field\(s\): (?P<cols>.*)", lambda m: _("unknown field(s): %(fields)s") % {"fields": m["cols"]}
    ),
    "sku_again": _rule(
        r"sku (?P<sku>.+) appears again \(first on line (?P<line>\d+)\)",
        lambda m: _("sku %(sku)s appears again (first on line %(line)s)") % {"sku": m["sku"], "line": m["line"]},
    ),
    "unknown_sku": _rule(
        r"unknown sku (?P<sku>.+) \(import the catalog first\)",
        lambda m: _("unknown sku %(sku)s (import the catalog first)") % {"sku": m["sku"]},
    ),
    "no_event_rows": _rule(r"the file has no event rows", lambda m: _("the file has no event rows")),
    "empty_file": _rule(r"the file is empty \(no header row\)", lambda m: _("the file is empty (no header row)")),
    "header": _rule(
        r"cannot read the header: (?P<d>.*)", lambda m: _("cannot read the header: %(detail)s") % {"detail": m["d"]}
    ),
    "width": _rule(
        r"expected (?P<w>\d+) columns, found (?P<n>\d+)",
        lambda m: _("expected %(width)s columns, found %(found)s") % {"width": m["w"], "found": m["n"]},
    ),
    "unreadable_csv": _rule(
        r"unreadable CSV: (?P<d>.*)", lambda m: _("unreadable CSV: %(detail)s") % {"detail": m["d"]}
    ),
    "csv_parse": _rule(
        r"cannot parse the file as CSV: (?P<d>.*)",
        lambda m: _("cannot parse the file as CSV: %(detail)s") % {"detail": m["d"]},
    ),
    "invalid_json": _rule(r"invalid JSON: (?P<d>.*)", lambda m: _("invalid JSON: %(detail)s") % {"detail": m["d"]}),
    "json_object": _rule(r"each line must be a JSON object", lambda m: _("each line must be a JSON object")),
    "not_utf8": _rule(
        r"the file is not UTF-8: (?P<d>.*)", lambda m: _("the file is not UTF-8: %(detail)s") % {"detail": m["d"]}
    ),
    "not_bool": _rule(
        r"(?P<v>.+) is not a yes/no value \(use true/false, 1/0, yes/no\)",
        lambda m: _("%(value)s is not a yes/no value (use true/false, 1/0, yes/no)") % {"value": m["v"]},
    ),
    "not_number": _rule(r"(?P<v>.+) is not a number", lambda m: _("%(value)s is not a number") % {"value": m["v"]}),
    "negative": _rule(
        r"(?P<v>.+) is not a non-negative number",
        lambda m: _("%(value)s is not a non-negative number") % {"value": m["v"]},
    ),
    "not_finite": _rule(
        r"(?P<v>.+?)(?P<dots>\.\.\.)? is not a finite number",
        lambda m: _("%(value)s is not a finite number") % {"value": m["v"] + (m["dots"] or "")},
    ),
    "too_large_bare": _rule(r"is too large", lambda m: _("is too large")),
    "too_large": _rule(r"(?P<v>.+) is too large", lambda m: _("%(value)s is too large") % {"value": m["v"]}),
    "not_whole": _rule(
        r"(?P<v>.+) is not a whole number", lambda m: _("%(value)s is not a whole number") % {"value": m["v"]}
    ),
    "not_epoch": _rule(
        r"(?P<v>.+) is not a time in seconds since 1970",
        lambda m: _("%(value)s is not a time in seconds since 1970") % {"value": m["v"]},
    ),
    "timestamp_empty": _rule(r"timestamp is empty", lambda m: _("timestamp is empty")),
    "not_iso": _rule(
        r"(?P<v>.+) is not an ISO 8601 date-time \(e\.g\. (?P<e>\S+)\)",
        lambda m: _("%(value)s is not an ISO 8601 date-time (e.g. %(example)s)") % {"value": m["v"], "example": m["e"]},
    ),
    "context_json": _rule(
        r"context (?P<v>.+) is not valid JSON", lambda m: _("context %(value)s is not valid JSON") % {"value": m["v"]}
    ),
    "context_object": _rule(r"context must be a JSON object", lambda m: _("context must be a JSON object")),
    "too_long": _rule(
        r"(?P<f>\w+) is longer than (?P<n>\d+) characters",
        lambda m: _("%(field)s is longer than %(limit)s characters") % {"field": m["f"], "limit": m["n"]},
    ),
    "not_iso_currency": _rule(
        r"(?P<v>.+) is not a 3-letter ISO code", lambda m: _("%(value)s is not a 3-letter ISO code") % {"value": m["v"]}
    ),
    "price_currency": _rule(
        r"the price is in (?P<a>\w+) but (?P<col>\S+) says (?P<b>\w+)",
        lambda m: _("the price is in %(a)s but %(column)s says %(b)s") % {"a": m["a"], "column": m["col"], "b": m["b"]},
    ),
    "not_price_example": _rule(
        r"(?P<v>.+) is not a price \(e\.g\. .*\)",
        lambda m: _("%(value)s is not a price (e.g. 12.50, 12,50, '12.50 USD' or '€12.50')") % {"value": m["v"]},
    ),
    "not_price": _rule(r"(?P<v>.+) is not a price", lambda m: _("%(value)s is not a price") % {"value": m["v"]}),
    "price_negative": _rule(
        r"(?P<v>.+) is negative \(a price must be >= 0\)",
        lambda m: _("%(value)s is negative (a price must be >= 0)") % {"value": m["v"]},
    ),
    "decimals": _rule(
        r"(?P<v>.+) has more than 2 decimal places",
        lambda m: _("%(value)s has more than 2 decimal places") % {"value": m["v"]},
    ),
    "larger_than": _rule(
        r"(?P<v>.+) is larger than (?P<max>\S+)",
        lambda m: _("%(value)s is larger than %(max)s") % {"value": m["v"], "max": m["max"]},
    ),
    "needs_customer": _rule(r"needs a customer or a session_id", lambda m: _("needs a customer or a session_id")),
    "unknown_type": _rule(
        r"unknown event type (?P<v>.+) \(expected one of (?P<all>.+)\)",
        lambda m: _("unknown event type %(value)s (expected one of %(types)s)") % {"value": m["v"], "types": m["all"]},
    ),
    "needs_sku": _rule(
        r"a (?P<t>\w+) event needs a sku", lambda m: _("a %(type)s event needs a sku") % {"type": m["t"]}
    ),
    "needs_query": _rule(r"a search event needs a query", lambda m: _("a search event needs a query")),
    "needs_value": _rule(r"a rating event needs a value", lambda m: _("a rating event needs a value")),
    "value_range": _rule(
        r"value must be between (?P<lo>\S+) and (?P<hi>\S+)",
        lambda m: _("value must be between %(low)s and %(high)s") % {"low": m["lo"], "high": m["hi"]},
    ),
    "quantity": _rule(
        r"quantity must be a positive whole number", lambda m: _("quantity must be a positive whole number")
    ),
    "id_rule": _rule(
        r"(?P<f>\w+) (?P<v>.+) must be 1-100 characters from A-Z a-z 0-9 \. _ : @ -",
        lambda m: (
            _("%(field)s %(value)s must be 1-100 characters from A-Z a-z 0-9 . _ : @ -")
            % {"field": m["f"], "value": m["v"]}
        ),
    ),
    "url_scheme": _rule(r"must start with http:// or https://", lambda m: _("must start with http:// or https://")),
    "url_spaces": _rule(
        r"must not contain spaces or control characters", lambda m: _("must not contain spaces or control characters")
    ),
    "at_most": _rule(
        r"must be at most (?P<n>\d+) characters \(got (?P<got>\d+)\)",
        lambda m: _("must be at most %(limit)s characters (got %(got)s)") % {"limit": m["n"], "got": m["got"]},
    ),
    "value_problem": _rule(
        r"(?P<v>'.*') (?P<problem>must .+)",
        lambda m: f"{m['v']} {translate_message(m['problem'])}",
    ),
    # "<column>: <problem>": the column is the file's own name, the problem one of the above.
    "column": _rule(
        r"(?P<col>[\w .-]+): (?P<problem>.+)",
        lambda m: _("%(column)s: %(problem)s") % {"column": m["col"], "problem": translate_message(m["problem"])},
    ),
}

_LIST = re.compile(r"; (?=line \d+: |[\w .-]+: )")


_WHOLE = ("rejected", "duplicate", "db_refused", "internal")


def translate_message(text: str) -> str:
    """An importer's English text in the active language, values kept; an unknown text unchanged."""
    if not text:
        return text
    # A job's message first: its detail may hold "; " itself.
    for code in _WHOLE:
        pattern, render = PATTERNS[code]
        if m := pattern.fullmatch(text):
            return render(m)
    parts = _LIST.split(text)
    if len(parts) > 1:
        return _("; ").join(translate_message(p) for p in parts)
    for code, (pattern, render) in PATTERNS.items():
        if code not in _WHOLE and (m := pattern.fullmatch(text)):
            return render(m)
    return text
