"""Template helpers for the dashboard shell."""

from __future__ import annotations

from django import template
from django.urls import NoReverseMatch, reverse

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
    if value is None:
        return "–"
    return f"{value:,.2f} {currency}".strip()


# Pages owned by other apps (mounted under the store prefix) and the sidebar entry they belong to.
_NAMESPACE_SECTION = {"recommend": "jobs", "imports": "imports"}


@register.simple_tag(takes_context=True)
def nav_section(context) -> str:
    """The highlighted sidebar entry: the view's ``section``, else derived from the URL namespace."""
    if context.get("section"):
        return context["section"]
    match = getattr(context.get("request"), "resolver_match", None)
    return _NAMESPACE_SECTION.get(getattr(match, "namespace", ""), "")
