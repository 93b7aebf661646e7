"""``{% product_image url title %}``: a product's picture on the dashboard, or a neutral box without one."""

from __future__ import annotations

from django import template
from django.conf import settings
from django.utils.html import format_html
from django.utils.translation import gettext as _

register = template.Library()

_SIZES = {"sm": 32, "md": 44, "lg": 176}


def site_relative(url: str) -> str:
    """This site's own files (the demo's placeholders, ``SITE_URL/static/…``) as a path: they then load
    whichever address the dashboard is opened at (``127.0.0.1`` or a LAN name as well as ``SITE_URL``),
    and stay ``'self'`` for the Content-Security-Policy. Other URLs are returned unchanged."""
    prefix = settings.SITE_URL + "/"
    return url[len(prefix) - 1 :] if url.startswith(prefix) else url


@register.simple_tag
def product_image(url: str | None, title: str, size: str = "md") -> str:
    """``<img loading="lazy" alt="title">`` sized ``sm``/``md``/``lg``; a placeholder box when ``url`` is empty."""
    px = _SIZES.get(size, _SIZES["md"])
    if not url:
        return format_html(
            '<span class="thumb thumb-{} thumb-empty" role="img" aria-label="{}" title="{}"></span>',
            size,
            _("No image"),
            _("No image"),
        )
    return format_html(
        '<img class="thumb thumb-{}" src="{}" alt="{}" loading="lazy" decoding="async" width="{}" height="{}">',
        size,
        site_relative(url),
        title,
        px,
        px,
    )
