"""Insights pages: segments (charts, rule builder, export), customer profiles, privacy settings.

Every view goes through ``store_view``: non-members get 404 and the store scope is active, so the
scoped managers only see this store's profiles and segments.
"""

from __future__ import annotations

import json
import logging

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from analytics import charts, privacy, selectors, services
from analytics.forms import AutoSegmentForm, ExportForm, PrivacyForm, RuleSegmentEditForm, RuleSegmentForm
from analytics.models import CustomerProfile, ProfileRun, Segment
from analytics.rule_segments import (
    SegmentInput,
    builder_config,
    create_rule_segment,
    describe_rules,
    running_campaigns,
    update_rule_segment,
    validate_rules,
)
from analytics.rules_builder import RuleError
from analytics.segments import build_auto_segments, refresh_segment_memberships, segment_queryset
from shop_recs.dashboard.customer_panels import CustomerPanel
from shop_recs.platform.charts import figure_json
from shop_recs.stores.access import require_merchant, store_view

logger = logging.getLogger(__name__)

# Lazy: read when a chart is drawn, in the viewer's language (a plain gettext here ran once, at import, in
# English, so a zh-Hans merchant's habits chart said "Mon".."Sun").
_DOW = [
    gettext_lazy("Mon"),
    gettext_lazy("Tue"),
    gettext_lazy("Wed"),
    gettext_lazy("Thu"),
    gettext_lazy("Fri"),
    gettext_lazy("Sat"),
    gettext_lazy("Sun"),
]


def _run_json(run: ProfileRun | None) -> dict | None:
    if run is None:
        return None
    return {
        **run.status_payload(),
        "mode": run.mode,
        "stage_label": _(run.stage) if run.stage else "",
        "n_customers": run.n_customers,
        "n_skipped_events": run.n_skipped_events,
    }


def _chartable(values: list) -> list:
    """Cells a chart can draw: a figure not released (budget used up) is drawn like a hidden one."""
    return [None if v == selectors.NOT_RELEASED else v for v in values]


@store_view
def segments(request: HttpRequest) -> HttpResponse:
    data = selectors.segments_dashboard(request.store, request.user)
    k = data["k"]
    names = [s.display_name for s in data["segments"]]
    figures = {}
    if data["segments"] and data["release"].values is not None:
        figures["sizes"] = figure_json(charts.segment_sizes_figure(names, _chartable(data["sizes"])))
        is_rule = [s.kind == Segment.Kind.RULE for s in data["segments"]]
        overlap = charts.rule_overlap(names, is_rule, [_chartable(row) for row in data["overlap"]])
        if overlap is not None:  # automatic segments alone never overlap: the page says so instead
            figures["overlap"] = figure_json(charts.overlap_figure(*overlap))
    if data["centroids"]:
        figures["centroids"] = figure_json(
            charts.centroid_heatmap_figure(data["centroid_names"], data["centroid_features"], data["centroids"])
        )
    if data["pca"]:
        figures["pca"] = figure_json(
            charts.pca_scatter_figure(data["pca"]["x"], data["pca"]["y"], data["pca"]["labels"])
        )
    if data["n_profiles"]:
        figures["rfm"] = figure_json(charts.rfm_heatmap_figure([_chartable(row) for row in data["rfm"]]))
    dp_on = data["release"].dp
    rows = [
        {
            "segment": s,
            "size": size if size == selectors.NOT_RELEASED else privacy.display(size, k),
            # The cached share is exact: not shown while differential privacy is on.
            "revenue_share": None if dp_on else (s.summary or {}).get("revenue_share"),
        }
        for s, size in zip(data["segments"], data["sizes"], strict=True)
    ]
    return render(
        request,
        "analytics/segments.html",
        {
            "section": "segments",
            "data": data,
            "rows": rows,
            "figures": figures,
            "run": _run_json(ProfileRun.objects.first()),
            "auto_form": AutoSegmentForm(),
            "release": data["release"],
        },
    )


@store_view
@require_POST
def start_run(request: HttpRequest) -> HttpResponse:
    mode = request.POST.get("mode", ProfileRun.Mode.FULL)
    try:
        services.start_profile_run(request.store, mode, request.user)
    except ValueError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("Profile computation started."))
    return redirect("analytics:segments", store_slug=request.store.slug)


@store_view
def run_status(request: HttpRequest, run_id: int) -> JsonResponse:
    run = get_object_or_404(ProfileRun, pk=run_id)
    return JsonResponse(_run_json(run))


@store_view
@require_POST
def rebuild_segments(request: HttpRequest) -> HttpResponse:
    form = AutoSegmentForm(request.POST)
    if form.is_valid():
        built = build_auto_segments(request.store, k=form.cleaned_data["k"])
        messages.success(request, _("%(n)d automatic segments built.") % {"n": len(built)})
    else:
        messages.error(request, _("Invalid number of segments."))
    return redirect("analytics:segments", store_slug=request.store.slug)


def _segment_input(form: RuleSegmentForm) -> SegmentInput:
    data = form.cleaned_data
    return SegmentInput(name=data["name"], description=data["description"], rules=data["rules"])


def _form_page(request: HttpRequest, form: RuleSegmentForm, **extra: object) -> HttpResponse:
    """The builder page for a new, duplicated or edited rule segment."""
    context = {
        "section": "segments",
        "form": form,
        "builder": builder_config(request.store),
        "dp_on": services.get_settings(request.store).dp_epsilon is not None,
        "error_path": form.rules_error_path,
        "mode": "new",
        **extra,
    }
    return render(request, "analytics/segment_form.html", context)


def _rule_segment(segment_id: int) -> Segment:
    """A rule segment of this store; automatic segments are rebuilt by clustering, not edited (404)."""
    return get_object_or_404(Segment, pk=segment_id, kind=Segment.Kind.RULE)


@store_view
def segment_new(request: HttpRequest) -> HttpResponse:
    form = RuleSegmentForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        seg = create_rule_segment(request.store, request.user, _segment_input(form))
        return redirect("analytics:segment_detail", store_slug=request.store.slug, segment_id=seg.pk)
    return _form_page(request, form)


@store_view
def segment_duplicate(request: HttpRequest, segment_id: int) -> HttpResponse:
    """A new segment starting from a saved one's conditions; nothing is created until it is saved."""
    source = _rule_segment(segment_id)
    initial = {
        "name": _("Copy of %(name)s") % {"name": source.name},
        "description": source.description,
        "rules": json.dumps(source.rules, ensure_ascii=False),
    }
    form = RuleSegmentForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        seg = create_rule_segment(request.store, request.user, _segment_input(form))
        messages.success(request, _("Segment duplicated."))
        return redirect("analytics:segment_detail", store_slug=request.store.slug, segment_id=seg.pk)
    return _form_page(request, form, mode="duplicate", source=source)


@store_view
def segment_edit(request: HttpRequest, segment_id: int) -> HttpResponse:
    """Edit a rule segment. Creating one is open to every member, so is editing one; but when running
    campaigns target it, its conditions decide who sees ads: then only a merchant may save, after
    confirming."""
    seg = _rule_segment(segment_id)
    campaigns = running_campaigns(seg)
    may_save = not campaigns or request.membership.is_merchant
    initial = {"name": seg.name, "description": seg.description, "rules": json.dumps(seg.rules, ensure_ascii=False)}
    form = RuleSegmentEditForm(
        request.POST or None, initial=initial, old_rules=seg.rules, campaigns=tuple(c.pk for c in campaigns)
    )
    if request.method == "POST":
        if not may_save:
            require_merchant(request)
        if form.is_valid():
            changes = update_rule_segment(request.store, request.user, seg, _segment_input(form))
            messages.success(request, _("Segment saved.") if changes else _("Nothing changed."))
            return redirect("analytics:segment_detail", store_slug=request.store.slug, segment_id=seg.pk)
    return _form_page(request, form, mode="edit", segment=seg, campaigns=campaigns, may_save=may_save)


@store_view
@require_POST
def audience(request: HttpRequest) -> JsonResponse:
    """Live audience size for a condition tree: ``{"ok": true, "count": n, "display": "1,234"}`` or 400."""
    try:
        payload = json.loads(request.body or b"{}")
    except (ValueError, RecursionError):  # not JSON, not UTF-8, an int over 4,300 digits, nesting too deep
        return JsonResponse({"ok": False, "error": _("The request body is not valid JSON.")}, status=400)
    tree = payload.get("rules") if isinstance(payload, dict) else None
    try:
        # Store-aware: a category or brand this store does not have is a 400 naming the condition,
        # not a silent "<5" (and, with differential privacy on, no ε is spent on it).
        q = validate_rules(tree)
    except RuleError as exc:
        return JsonResponse({"ok": False, "error": str(exc), "path": exc.path}, status=400)
    result = selectors.audience_size(request.store, q, tree, request.user)
    rel = result["release"]
    body = {"ok": True, "count": result["count"], "display": result["display"]}
    if rel.dp:
        body.update(
            epsilon=round(rel.epsilon, 6),
            status=rel.status,
            budget_left=round(max(0.0, rel.budget - rel.spent), 6),
            note=_dp_note(rel),
        )
    return JsonResponse(body)


def _dp_note(rel: services.Release) -> str:
    """One sentence for the audience box: what this figure cost, or why there is none."""
    if rel.status == "exhausted":
        return _("Privacy budget used up: no new audience sizes until it frees up.")
    if rel.status == "stale":
        return _("Privacy budget used up: this is the size released earlier for these conditions.")
    if rel.status == "cached":
        return _("Released before for these conditions (ε = %(e)s, not spent again).") % {"e": f"{rel.epsilon:g}"}
    return _("Noisy count, ε = %(e)s spent.") % {"e": f"{rel.epsilon:g}"}


@store_view
def segment_detail(request: HttpRequest, segment_id: int) -> HttpResponse:
    seg = get_object_or_404(Segment, pk=segment_id)
    figures = selectors.segment_figures(request.store, seg, request.user)
    k, rel = figures["k"], figures["release"]
    error = ""
    sample = []
    try:
        sample = list(segment_queryset(seg).select_related("customer").order_by("-monetary")[:25])
    except RuleError as exc:
        error = str(exc)
    # A member list is not an aggregate noise can protect, and its length would reveal a small size:
    # with DP on it is not shown (merchants can still export, and every export is logged).
    if rel.dp or figures["size"] is None:
        sample = []
    return render(
        request,
        "analytics/segment_detail.html",
        {
            "section": "segments",
            "segment": seg,
            "summary": dict(seg.summary or {}),
            "sample": sample,
            "size_display": figures["size_display"],
            "size_shown": figures["size"] is not None,
            "revenue": figures["revenue"],
            "clip": figures["clip"],
            "release": rel,
            "error": error,
            "export_form": ExportForm(),
            "k": k,
            "is_merchant": request.membership.role == "merchant",
            "rules_text": describe_rules(seg.rules) if seg.kind == Segment.Kind.RULE else "",
            "campaigns": running_campaigns(seg),
        },
    )


@store_view(merchant_only=True)
@require_POST
def segment_delete(request: HttpRequest, segment_id: int) -> HttpResponse:
    get_object_or_404(Segment, pk=segment_id).delete()
    refresh_segment_memberships(request.store)
    return redirect("analytics:segments", store_slug=request.store.slug)


@store_view(merchant_only=True)
@require_POST
def segment_export(request: HttpRequest, segment_id: int) -> HttpResponse:
    seg = get_object_or_404(Segment, pk=segment_id)
    form = ExportForm(request.POST)
    if not form.is_valid():
        return HttpResponse(_("Unknown export field."), status=400)
    body, _n = services.export_segment_csv(request.store, seg, form.cleaned_data["fields"], request.user)
    response = HttpResponse(body, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="segment-{seg.pk}.csv"'
    return response


@store_view
def customer_profile(request: HttpRequest, external_id: str) -> HttpResponse:
    """The old profile address: the profile is a section of the one customer page now."""
    url = reverse("dashboard:customer_detail", kwargs={"store_slug": request.store.slug, "external_id": external_id})
    return redirect(f"{url}#profile")


def customer_profile_panel(store, customer) -> CustomerPanel:
    """The profile section of the customer page (registered in ``AnalyticsConfig.ready``)."""
    profile = CustomerProfile.objects.filter(customer=customer).select_related("auto_segment").first()
    figures = {}
    segments = []
    if profile is not None:
        if profile.category_affinity:
            figures["affinity"] = figure_json(charts.affinity_figure(profile.category_affinity, profile.brand_affinity))
        if profile.dow_histogram:
            days = [str(d) for d in _DOW]
            figures["habits"] = figure_json(charts.habits_figure(profile.dow_histogram, profile.hour_histogram, days))
        segments = list(Segment.objects.filter(pk__in=profile.segment_ids or []))
    return CustomerPanel(
        "analytics/_customer_profile_panel.html",
        {"profile": profile, "figures": figures, "segments": segments},
        needs_charts=bool(figures),
    )


@store_view(merchant_only=True)
def privacy_settings(request: HttpRequest) -> HttpResponse:
    obj = services.get_settings(request.store)
    form = PrivacyForm(request.POST or None, instance=obj)
    if request.method == "POST" and form.is_valid():
        require_merchant(request)
        form.save()
        messages.success(request, _("Privacy settings saved."))
        return redirect("analytics:privacy", store_slug=request.store.slug)
    return render(
        request,
        "analytics/privacy.html",
        {"section": "segments", "form": form, "ledger": selectors.privacy_ledger(request.store, obj)},
    )
