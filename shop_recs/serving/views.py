"""The Recommendations pages: a side-by-side preview of what a customer would be shown, and the rules.

Both read for merchants and analysts; only merchants may save rules. The preview serves through the
API's code path with ``log=False`` and per-request rule overrides, so it writes nothing.
"""

from __future__ import annotations

from django.contrib import messages
from django.forms.models import model_to_dict
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from shop_recs.serving import preview as sel
from shop_recs.serving.audit import field_changes, recent_changes, record_change
from shop_recs.serving.forms import PreviewForm, StoreRulesForm
from shop_recs.serving.models import ChangeKind, StoreRules
from shop_recs.serving.rules import load_rules
from shop_recs.stores.access import require_merchant, store_view
from shop_recs.training.activation import activation_history


@store_view
@require_GET
def preview(request: HttpRequest) -> HttpResponse:
    store = request.store
    active = sel.active_version()
    rules = load_rules(store)
    defaults = sel.Toggles.from_rules(rules)
    form = PreviewForm(request.GET or None)
    toggles = form.toggles(defaults)
    if not form.is_bound or form.cleaned_data.get("rules") != "1":
        # Show the store's rules as the switches' starting position.
        form = PreviewForm(
            initial={
                "customer": request.GET.get("customer", ""),
                "rules": "1",
                "exclude_purchased": toggles.exclude_purchased,
                "exclude_out_of_stock": toggles.exclude_out_of_stock,
                "apply_boosts": toggles.apply_boosts,
                "diversity": toggles.diversity,
            }
        )
    customer_id = request.GET.get("customer", "").strip()
    sku = request.GET.get("product", "").strip()
    context = {
        "section": "recommendations",
        "tab": "preview",
        "active": active,
        "form": form,
        "toggles": toggles,
        "defaults": defaults,
        "customer_query": customer_id,
        "product_query": sku,
        "suggestions": sel.customer_suggestions(limit=8) if not customer_id and not sku else [],
    }
    if active is not None:
        context["run_versions"] = sel.run_versions(active)
        if customer_id:
            customer = sel.find_customer(customer_id)
            context["customer"] = customer
            if customer is not None:
                context["history"] = sel.customer_history(customer)
                context["result"] = sel.customer_preview(store, customer, active, toggles)
        if sku:
            product = sel.find_product(sku)
            context["product"] = product
            if product is not None:
                context["product_result"] = sel.product_preview(store, product)
    return render(request, "recommend/preview.html", context)


@store_view
@require_GET
def lookup(request: HttpRequest) -> JsonResponse:
    """Typeahead for the preview's search boxes: ``?kind=customer|product&q=``."""
    q = request.GET.get("q", "")[:100]
    if request.GET.get("kind") == "product":
        results = [{"value": sku, "label": title} for sku, title in sel.product_suggestions(q)]
    else:
        results = [{"value": ext, "label": ""} for ext in sel.customer_suggestions(q)]
    return JsonResponse({"results": results})


@store_view
def rules(request: HttpRequest) -> HttpResponse:
    store = request.store
    row = sel.store_rules(store)
    is_merchant = request.membership.is_merchant
    if request.method == "POST":
        require_merchant(request)
        before = _rules_values(row)
        form = StoreRulesForm(request.POST, instance=row, store=store)
        if form.is_valid():
            saved = form.save()
            changes = field_changes(before, _rules_values(saved))
            summary = ", ".join(sorted(changes)) or "saved without changes"
            record_change(store, request.user, ChangeKind.RULES, f"rules: {summary}", obj=saved, details=changes)
            messages.success(request, _("Rules saved. Every list served from now on uses them."))
            return redirect(reverse("recs:rules", kwargs={"store_slug": store.slug}))
        status = 400
    else:
        form = StoreRulesForm(instance=row, store=store, read_only=not is_merchant)
        status = 200
    context = {
        "section": "recommendations",
        "tab": "rules",
        "form": form,
        "is_merchant": is_merchant,
        "summary": sel.rules_summary(row),
        "updated_at": row.updated_at if row.pk else None,
    }
    return render(request, "recommend/rules.html", context, status=status)


def _rules_values(row: StoreRules) -> dict:
    return model_to_dict(row, exclude=["id", "store", "updated_at"]) if row.pk else {}


@store_view
@require_GET
def change_history(request: HttpRequest) -> HttpResponse:
    """Every change to what shoppers see: the live model's activations (who, how, why, what it
    replaced) and the confirmed rule, experiment and campaign changes."""
    context = {
        "section": "recommendations",
        "tab": "history",
        "store_slug": request.store.slug,
        "records": activation_history(request.store),
        "changes": recent_changes(request.store),
    }
    return render(request, "recommend/activation_history.html", context)
