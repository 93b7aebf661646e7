"""The Recommendations pages: a side-by-side preview of what a customer would be shown, the
placements and their rules.

All read for merchants and analysts; only merchants may create, edit or delete placements and save
rules. The preview serves through the API's code path with ``log=False`` and per-request rule
overrides, so it writes nothing.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from shop_recs.serving import placements as plc
from shop_recs.serving import preview as sel
from shop_recs.serving.audit import recent_changes
from shop_recs.serving.forms import (
    DeletePlacementForm,
    NewPlacementForm,
    PlacementForm,
    PreviewForm,
    StoreRulesForm,
)
from shop_recs.serving.models import Placement, default_placement
from shop_recs.serving.rules import load_rules
from shop_recs.stores.access import require_merchant, store_view
from shop_recs.training.activation import activation_history


@store_view
@require_GET
def preview(request: HttpRequest) -> HttpResponse:
    store = request.store
    active = sel.active_version()
    choices = plc.placement_choices(store)
    placement = sel.preview_placement(request.GET.get("placement", ""), choices)
    rules = load_rules(store, placement)
    defaults = sel.Toggles.from_rules(rules)
    form = PreviewForm(request.GET or None)
    toggles = form.toggles(defaults)
    if not form.is_bound or form.cleaned_data.get("rules") != "1":
        # Show the placement's rules as the switches' starting position.
        form = PreviewForm(
            initial={
                "customer": request.GET.get("customer", ""),
                "placement": placement,
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
        "placement": placement,
        "placement_row": plc.placement_by_key(store, placement),
        "placement_choices": choices,
        "placement_asked": request.GET.get("placement", ""),
        "suggestions": sel.customer_suggestions(limit=8) if not customer_id and not sku else [],
    }
    if active is not None:
        context["run_versions"] = sel.run_versions(active)
        if customer_id:
            customer = sel.find_customer(customer_id)
            context["customer"] = customer
            if customer is not None:
                context["history"] = sel.customer_history(customer)
                context["result"] = sel.customer_preview(store, customer, active, toggles, placement)
        if sku:
            product = sel.find_product(sku)
            context["product"] = product
            if product is not None:
                context["product_result"] = sel.product_preview(store, product, placement=placement)
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
    """The default placement's rules: what every request without a placement of its own is served."""
    if request.method == "POST":
        require_merchant(request)  # checked again in _edit_rules; here too so the view says it
    return _edit_rules(request, default_placement(request.store.pk), with_settings=False)


@store_view
def placements(request: HttpRequest) -> HttpResponse:
    """Every placement with its rules at a glance, and (merchants) a form to add one."""
    store = request.store
    is_merchant = request.membership.is_merchant
    if request.method == "POST":
        require_merchant(request)
        form = NewPlacementForm(request.POST, store=store)
        if form.is_valid():
            data = form.cleaned_data
            try:
                placement = plc.create_placement(
                    store, request.user, key=data["key"], name=data["name"], algorithm=data["algorithm"]
                )
            except plc.PlacementError as exc:
                form.add_error("key", str(exc))
            else:
                messages.success(
                    request,
                    _("Placement “%(name)s” created with a copy of the default placement's rules.")
                    % {"name": placement.name},
                )
                return redirect(_placement_url(store.slug, placement))
        status = 400
    else:
        form = NewPlacementForm(store=store, read_only=not is_merchant)
        status = 200
    context = {
        "section": "recommendations",
        "tab": "placements",
        "rows": plc.placement_rows(store),
        "form": form,
        "is_merchant": is_merchant,
    }
    return render(request, "recommend/placements.html", context, status=status)


@store_view
def placement_edit(request: HttpRequest, placement_id: int) -> HttpResponse:
    placement = get_object_or_404(Placement, pk=placement_id)
    if request.method == "POST":
        require_merchant(request)  # checked again in _edit_rules; here too so the view says it
    return _edit_rules(request, placement, with_settings=True)


@store_view
def placement_delete(request: HttpRequest, placement_id: int) -> HttpResponse:
    """GET: what deleting changes, and the confirmation; POST (merchants): delete."""
    placement = get_object_or_404(Placement, pk=placement_id)
    is_merchant = request.membership.is_merchant
    status = 200
    form = DeletePlacementForm()
    if request.method == "POST":
        require_merchant(request)
        form = DeletePlacementForm(request.POST)
        if form.is_valid():
            try:
                plc.delete_placement(placement, request.user)
            except plc.PlacementError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, _("Placement “%(name)s” deleted.") % {"name": placement.name})
                return redirect(reverse("recs:placements", kwargs={"store_slug": request.store.slug}))
        status = 400
    context = {
        "section": "recommendations",
        "tab": "placements",
        "placement": placement,
        "form": form,
        "is_merchant": is_merchant,
        "experiment": plc.running_experiment(placement),
    }
    return render(request, "recommend/placement_delete.html", context, status=status)


def _placement_url(store_slug: str, placement: Placement) -> str:
    return reverse("recs:placement", kwargs={"store_slug": store_slug, "placement_id": placement.pk})


def _edit_rules(request: HttpRequest, placement: Placement, *, with_settings: bool) -> HttpResponse:
    """The rules form of one placement (plus its name and algorithm on the placement's own page)."""
    store = request.store
    row = plc.rules_row(placement)
    is_merchant = request.membership.is_merchant
    settings_form = None
    if request.method == "POST":
        require_merchant(request)
        if with_settings:
            settings_form = PlacementForm(request.POST, instance=placement, store=store, editing=True)
        form = StoreRulesForm(request.POST, instance=row, store=store, placement=placement)
        if form.is_valid() and (settings_form is None or settings_form.is_valid()):
            data = settings_form.cleaned_data if settings_form is not None else {}
            plc.save_placement(
                placement,
                request.user,
                name=data.get("name", placement.name),
                algorithm=data.get("algorithm", placement.algorithm),
                rules=form.save(commit=False),
            )
            if placement.is_default:
                messages.success(request, _("Rules saved. Every list served from now on uses them."))
            else:
                messages.success(
                    request, _("Rules of “%(name)s” saved. Its lists use them from now on.") % {"name": placement.name}
                )
            if with_settings:
                return redirect(_placement_url(store.slug, placement))
            return redirect(reverse("recs:rules", kwargs={"store_slug": store.slug}))
        status = 400
    else:
        if with_settings:
            settings_form = PlacementForm(instance=placement, store=store, editing=True, read_only=not is_merchant)
        form = StoreRulesForm(instance=row, store=store, read_only=not is_merchant, placement=placement)
        status = 200
    context = {
        "section": "recommendations",
        "tab": "placements" if with_settings else "rules",
        "form": form,
        "settings_form": settings_form,
        "placement": placement,
        "experiment": plc.running_experiment(placement),
        "is_merchant": is_merchant,
        "summary": sel.rules_summary(row),
        "updated_at": row.updated_at if row.pk else None,
    }
    return render(request, "recommend/rules.html", context, status=status)


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
