"""Template helpers for the dashboard shell."""

from __future__ import annotations

from django import template
from django.urls import NoReverseMatch, reverse
from django.utils.translation import pgettext_lazy

from shop_recs.dashboard.formatting import format_money, format_number
from shop_recs.platform.stages import stage_label

register = template.Library()

# Pages whose URL carries more than the store (a product, a key...) switch to their section's list.
_SECTION_LANDING = {
    "product_detail": "catalog",
    "customer_detail": "customers",
    "revoke_api_key": "api_keys",
    "change_member_role": "members",
    "remove_member": "members",
}


@register.simple_tag(takes_context=True)
def store_switch_url(context, store) -> str:
    """The same page in another store (or that section's landing page when the page is store-specific)."""
    request = context.get("request")
    match = getattr(request, "resolver_match", None)
    fallback = reverse("dashboard:overview", kwargs={"store_slug": store.slug})
    if match is None or "store_slug" not in match.kwargs:
        return fallback
    name = match.url_name
    if set(match.kwargs) != {"store_slug"}:
        name = _SECTION_LANDING.get(name)
        if name is None:
            return fallback
        namespace = "dashboard"
    else:
        namespace = match.namespace
    try:
        return reverse(f"{namespace}:{name}", kwargs={"store_slug": store.slug})
    except NoReverseMatch:
        return fallback


@register.simple_tag(takes_context=True)
def store_url(context, name: str, **kwargs) -> str:
    """``reverse("dashboard:<name>")`` for the current store."""
    store = context["current_store"]
    return reverse(f"dashboard:{name}", kwargs={"store_slug": store.slug, **kwargs})


@register.filter
def percent(value) -> str:
    if value is None:
        return "–"
    return f"{value * 100:.1f}%"


@register.filter
def money(value, currency: str = "") -> str:
    """An amount in the store's currency, as the reader's language writes it ("$1,234.50", "US$1,234.50")."""
    return format_money(value, currency)


@register.filter
def num(value, decimals: int | None = None) -> str:
    """A number with the locale's thousands separator ("71,465"; ``num:1`` for one decimal place)."""
    if value in ("", None):
        return "–"
    try:
        return format_number(value, None if decimals in (None, "") else int(decimals))
    except (TypeError, ValueError):
        return str(value)


# Pages owned by other apps (mounted under the store prefix) and the sidebar entry they belong to.
_NAMESPACE_SECTION = {"recommend": "jobs", "imports": "imports"}


@register.simple_tag(takes_context=True)
def nav_section(context) -> str:
    """The highlighted sidebar entry: the view's ``section``, else derived from the URL namespace."""
    if context.get("section"):
        return context["section"]
    match = getattr(context.get("request"), "resolver_match", None)
    return _NAMESPACE_SECTION.get(getattr(match, "namespace", ""), "")


# Customer genders arrive as free text from the shop (API, imports); the usual values are named in the
# reader's language, anything else is shown as the shop sent it.
_GENDERS = {
    "female": pgettext_lazy("gender", "female"),
    "f": pgettext_lazy("gender", "female"),
    "woman": pgettext_lazy("gender", "female"),
    "male": pgettext_lazy("gender", "male"),
    "m": pgettext_lazy("gender", "male"),
    "man": pgettext_lazy("gender", "male"),
    "other": pgettext_lazy("gender", "other"),
    "diverse": pgettext_lazy("gender", "diverse"),
    "non-binary": pgettext_lazy("gender", "non-binary"),
    "unknown": pgettext_lazy("gender", "unknown"),
}


@register.filter
def gender(value: str) -> str:
    if not value:
        return "—"
    label = _GENDERS.get(str(value).strip().lower())
    return str(label) if label is not None else value


@register.filter
def stage(value: str) -> str:
    """A job stage in the reader's language (``platform.stages``)."""
    return stage_label(value)


# How an ad conversion was attributed (ads.selectors.Conversion.via): a code, named for the reader.
_VIA = {
    "click": pgettext_lazy("attributed via", "after a click"),
    "impression": pgettext_lazy("attributed via", "after an impression"),
    "context": pgettext_lazy("attributed via", "impression id sent with the purchase"),
}


@register.filter
def attribution_via(value: str) -> str:
    label = _VIA.get(value or "")
    return str(label) if label is not None else value
