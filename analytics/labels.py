"""Names and descriptions of automatic segments, built when shown, in the reader's language.

Clustering stores what sets a cluster apart as codes and figures (``Segment.summary["label"]``):

    {"kind": "buyers", "recency": "recent", "frequent": true, "spend": "mid",
     "category": "Home & Garden", "n": 1,
     "stats": {"rec": 12.0, "prec": 30.0, "freq": 4.0, "pfreq": 2.0, "mon": 310.5, "pmon": 120.0}}

and the page renders them with gettext for whoever reads it, so a zh-Hans merchant reads
"近期高频中等消费客户 · Home & Garden" where an English one reads "Recent frequent mid spenders · Home
& Garden". The category is the merchant's own text and stays as written.

Segments built before the codes existed hold an English name and description only; ``parse_legacy``
recognises the texts this module used to write (the grammar is small and fixed) and turns them back
into the same codes, so those translate too. Any other stored text is shown as it is.
"""

from __future__ import annotations

import math
import re
from typing import Any

from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.utils.translation import override, pgettext

LABEL_KEY = "label"
RECENCY = ("recent", "steady", "lapsed")
SPEND = ("high", "mid", "low")


def cluster_label(centroid_raw: dict[str, float], population: dict[str, float], top_category: str | None) -> dict:
    """The codes of a cluster: how its medians differ from the population's (``name_cluster``'s rules)."""
    label: dict[str, Any] = {"category": top_category.split(" > ")[-1] if top_category else None, "n": 1}
    label["top_category"] = top_category
    if centroid_raw["frequency"] < 0.5:
        label["kind"] = "browsers"
        return label
    if centroid_raw["recency"] <= 0.6 * population["recency"]:
        recency = "recent"
    elif centroid_raw["recency"] >= 1.5 * population["recency"]:
        recency = "lapsed"
    else:
        recency = "steady"
    if centroid_raw["monetary"] >= 1.5 * population["monetary"]:
        spend = "high"
    elif centroid_raw["monetary"] <= 0.6 * population["monetary"]:
        spend = "low"
    else:
        spend = "mid"
    label.update(
        kind="buyers",
        recency=recency,
        spend=spend,
        frequent=centroid_raw["frequency"] >= 1.5 * max(population["frequency"], 1),
        stats={
            "rec": _finite(centroid_raw["recency"]),
            "prec": _finite(population["recency"]),
            "freq": _finite(centroid_raw["frequency"]),
            "pfreq": _finite(population["frequency"]),
            "mon": _finite(centroid_raw["monetary"]),
            "pmon": _finite(population["monetary"]),
        },
    )
    return label


def _finite(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 4)


def _recency_word(code: str) -> str:
    return {
        "recent": pgettext("segment name", "Recent"),
        "steady": pgettext("segment name", "Steady"),
        "lapsed": pgettext("segment name", "Lapsed"),
    }[code]


def _spend_word(code: str) -> str:
    return {
        "high": pgettext("segment name", "high spenders"),
        "mid": pgettext("segment name", "mid spenders"),
        "low": pgettext("segment name", "low spenders"),
    }[code]


def label_name(label: dict) -> str:
    """The segment's name in the active language."""
    if label.get("kind") == "browsers":
        name = pgettext("segment name", "Browsers, no purchase yet")
    elif label.get("frequent"):
        name = pgettext("segment name", "%(recency)s frequent %(spend)s") % {
            "recency": _recency_word(label["recency"]),
            "spend": _spend_word(label["spend"]),
        }
    else:
        name = pgettext("segment name", "%(recency)s %(spend)s") % {
            "recency": _recency_word(label["recency"]),
            "spend": _spend_word(label["spend"]),
        }
    if label.get("category"):
        name = f"{name} · {label['category']}"
    if (label.get("n") or 1) > 1:
        name = f"{name} ({label['n']})"
    return name


def _num(value: float | None, places: int) -> str:
    if value is None:
        return "–"
    return number_format(value, places, force_grouping=True)


def label_description(label: dict) -> str:
    """The segment's description in the active language (numbers in the active locale's format)."""
    if label.get("kind") == "browsers":
        desc = _("Active without buying; recency and spend are empty.")
    else:
        s = label.get("stats") or {}
        desc = _(
            "Median %(rec)s days since last order (all buyers: %(prec)s), %(freq)s orders (%(pfreq)s), "
            "revenue %(mon)s (%(pmon)s)."
        ) % {
            "rec": _num(s.get("rec"), 0),
            "prec": _num(s.get("prec"), 0),
            "freq": _num(s.get("freq"), 1),
            "pfreq": _num(s.get("pfreq"), 1),
            "mon": _num(s.get("mon"), 2),
            "pmon": _num(s.get("pmon"), 2),
        }
    if label.get("top_category"):
        desc = f"{desc} " + _("Leans towards %(cat)s more than the average customer.") % {"cat": label["top_category"]}
    return desc


def english(label: dict) -> tuple[str, str]:
    """Name and description in English: the plain text kept in the row for the API, exports and logs."""
    with override("en"):
        return label_name(label)[:200], label_description(label)


# --- segments stored before the codes --------------------------------------------------------------

_LEGACY_NAME = re.compile(
    r"^(?:(?P<browsers>Browsers, no purchase yet)|(?P<recency>Recent|Steady|Lapsed)(?P<frequent> frequent)? "
    r"(?P<spend>high|mid|low) spenders)(?: · (?P<category>.+?))?(?: \((?P<n>\d+)\))?$"
)
_LEGACY_DESC = re.compile(
    r"^(?:Active without buying; recency and spend are empty\.|Median (?P<rec>[\d.]+|inf) days since last order "
    r"\(all buyers: (?P<prec>[\d.]+)\), (?P<freq>[\d.]+) orders \((?P<pfreq>[\d.]+)\), revenue (?P<mon>[\d.]+) "
    r"\((?P<pmon>[\d.]+)\)\.)(?: Leans towards (?P<top>.+) more than the average customer\.)?$"
)


def parse_legacy(name: str, description: str) -> dict | None:
    """The codes behind a name and description this module wrote in English before, or None."""
    m = _LEGACY_NAME.match(name or "")
    d = _LEGACY_DESC.match(description or "")
    if not m or not d:
        return None
    label: dict[str, Any] = {"category": m["category"], "n": int(m["n"] or 1), "top_category": d["top"]}
    if m["browsers"]:
        label["kind"] = "browsers"
        return label
    label.update(kind="buyers", recency=m["recency"].lower(), spend=m["spend"], frequent=bool(m["frequent"]))
    label["stats"] = {
        k: _finite(float(d[k])) if d[k] else None for k in ("rec", "prec", "freq", "pfreq", "mon", "pmon")
    }
    return label


def segment_label(kind: str, name: str, description: str, summary: dict | None) -> dict | None:
    """The codes of an automatic segment (stored, or recognised in its old English texts); None otherwise."""
    if kind != "auto":
        return None
    label = (summary or {}).get(LABEL_KEY)
    if isinstance(label, dict) and _valid(label):
        return label
    return parse_legacy(name, description)


def _valid(label: dict) -> bool:
    if label.get("kind") == "browsers":
        return True
    return label.get("kind") == "buyers" and label.get("recency") in RECENCY and label.get("spend") in SPEND
