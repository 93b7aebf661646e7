"""Import pages in the reader's language: report keys, skip reasons and the importers' messages."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.formats import number_format

from shop_recs.imports import messages

register = template.Library()


@register.filter
def import_message(text: str) -> str:
    """A stored importer text (job message, row error) rendered in the active language."""
    return messages.translate_message(text or "")


@register.filter
def report_label(key: str) -> str:
    return messages.report_label(str(key))


def _value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value) if value is not None else "–"
    if isinstance(value, int | float):
        return number_format(value, force_grouping=True)
    return str(value)


@register.filter
def report_value(value: Any) -> str:
    """A report value: numbers grouped, a breakdown's keys named (``view: 1,204; purchase: 35``)."""
    if isinstance(value, dict):
        return "; ".join(f"{messages.report_label(str(k))}: {_value(v)}" for k, v in value.items()) or "–"
    if isinstance(value, list | tuple):
        return ", ".join(_value(v) for v in value) or "–"
    return _value(value)
