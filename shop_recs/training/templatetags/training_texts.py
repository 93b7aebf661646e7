"""Training pages in the reader's language: gate verdicts and activation reasons (``training.texts``)."""

from __future__ import annotations

from django import template

from shop_recs.training.texts import translate_reason

register = template.Library()


@register.filter
def gate_reason(text: str) -> str:
    return translate_reason(text or "")
