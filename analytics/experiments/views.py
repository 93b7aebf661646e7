"""Experiments pages: online metrics, the experiment list, results, the builder; stop (analysts too),
create, start and promote (merchants).

Analysts may read everything and stop a running experiment. Building one is for merchants (issue 14:
a draft is the first step towards what shoppers see, and it picks the store's models); starting one
changes what a share of shoppers sees and promoting a winner changes what every shopper sees, so
both ask for a confirmation and are recorded.
"""

from __future__ import annotations

import math
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from analytics.experiments import charts, placement_metrics, selectors, services
from analytics.experiments.forms import VARIANT_PREFIX, ExperimentForm, PowerForm, VariantFormSet, error_summary
from shop_recs.platform.charts import figure_json
from shop_recs.serving.audit import record_change
from shop_recs.serving.models import ChangeKind, Experiment, ExperimentStatus, Variant
from shop_recs.serving.placements import placement_choices
from shop_recs.stores.access import store_view
from shop_recs.training.texts import translate_reason

SECTION = "experiments"


def _get(experiment_id: int) -> Experiment:
    exp = Experiment.objects.filter(pk=experiment_id).first()
    if exp is None:
        raise Http404("No such experiment")
    return exp


def _detail_url(request: HttpRequest, exp: Experiment) -> str:
    return reverse("experiments:detail", kwargs={"store_slug": request.store.slug, "experiment_id": exp.pk})


@store_view
def index(request: HttpRequest) -> HttpResponse:
    raw_days = request.GET.get("days", "30")
    # isascii: str.isdigit() also accepts "²", which int() refuses (a 500 before).
    days = max(1, min(int(raw_days), 365)) if raw_days.isascii() and raw_days.isdigit() and len(raw_days) < 9 else 30
    metric = request.GET.get("metric", "ctr")
    if metric not in charts.METRIC_LABELS:
        metric = "ctr"
    online = selectors.online_metrics(days)
    # Per placement: a breakdown of every placement, and an optional filter (an unknown key: none).
    choices = placement_choices(request.store)
    keys = [key for key, _name in choices]
    by_placement = placement_metrics.placement_breakdown(online, choices)
    placement = request.GET.get("placement", "")
    if placement in keys:
        online = placement_metrics.filter_placement(online, placement, keys)
    else:
        placement = ""
    context = {
        "section": SECTION,
        "store_slug": request.store.slug,
        "is_merchant": request.membership.is_merchant,
        "experiments": Experiment.objects.prefetch_related("variants"),
        "online": online,
        "by_placement": by_placement,
        "placement": placement,
        "placement_choices": choices,
        "min_impressions": placement_metrics.MIN_IMPRESSIONS,
        "metric": metric,
        "metrics": charts.METRIC_LABELS,
        "days": days,
        "daily_fig": figure_json(charts.daily_metric_figure(online["daily"], metric)),
        "exposure": selectors.catalog_exposure(days),
    }
    return render(request, "experiments/index.html", context)


def _builder_forms(request: HttpRequest) -> tuple[ExperimentForm, VariantFormSet]:
    choices = selectors.builder_choices()
    data = request.POST if request.method == "POST" else None
    form = ExperimentForm(data, placements=placement_choices(request.store))
    formset = VariantFormSet(
        data,
        prefix=VARIANT_PREFIX,
        # The control starts as the live model version; the merchant picks what to compare it with.
        initial=None
        if data
        else [
            {"name": _("Control"), "kind": "model_version", "model_version": choices["active_id"], "traffic": 50},
            {"name": _("Variant B"), "kind": "model_version", "traffic": 50},
        ],
        form_kwargs={k: choices[k] for k in ("versions", "algorithms", "categories")},
    )
    return form, formset


@store_view(merchant_only=True)
@require_http_methods(["GET", "POST"])
def create(request: HttpRequest) -> HttpResponse:
    """The builder: GET shows it, POST creates a draft (starting is a separate, confirmed step)."""
    form, formset = _builder_forms(request)
    status = 200
    if request.method == "POST":
        # Both validated, so one page lists the details' and every variant's errors together.
        form_ok, variants_ok = form.is_valid(), formset.is_valid()
        if form_ok and variants_ok:
            try:
                exp = services.create_experiment(
                    request.store,
                    name=form.cleaned_data["name"],
                    placement=form.cleaned_data["placement"],
                    description=form.cleaned_data["description"],
                    variants=formset.variants(),
                    user=request.user,
                )
            except services.ExperimentError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, _("Draft created. Check the power estimate, then start it."))
                return redirect(_detail_url(request, exp))
        status = 400
    shares = [f.initial.get("traffic") or 0 for f in formset.forms[:2]] if not form.is_bound else _shares(formset)
    estimate = _estimate(form, shares)
    context = {
        "section": SECTION,
        "store_slug": request.store.slug,
        "form": form,
        "formset": formset,
        "errors": error_summary(form, formset) if form.is_bound else [],
        "power": estimate,
    }
    return render(request, "experiments/new.html", context, status=status)


def _shares(formset: VariantFormSet) -> list[int]:
    """The traffic shares typed so far (for the estimate beside a form with errors)."""
    out = []
    for i, f in enumerate(formset.forms):
        raw = (f.data.get(f"{f.prefix}-traffic") or "").strip()
        if raw.isascii() and raw.isdigit() and len(raw) < 4:
            out.append(int(raw))
        elif i < 2:
            out.append(0)
    return out


def _estimate(form: PowerForm, shares: list[int]) -> dict[str, Any] | None:
    """The builder's power estimate: the inputs that are valid so far, the defaults for the rest."""
    cleaned = getattr(form, "cleaned_data", {})
    choices = form.fields["placement"].choices
    placement = cleaned.get("placement") or (choices[0][0] if choices else "")
    return selectors.power_estimate(placement, shares, **form.power_inputs()) if placement else None


@store_view
@require_http_methods(["GET"])
def power_estimate(request: HttpRequest) -> HttpResponse:
    """The builder's estimate panel (fetched as the merchant types): ``placement``, ``metric``,
    ``mde_percent``, ``alpha``, ``power`` and ``shares`` ("50,50")."""
    placements = placement_choices(request.store)
    # A parameter left out takes the builder's default (the first placement, an even two-way split).
    defaults = {"placement": placements[0][0] if placements else "", "metric": "ctr", "shares": "50,50"}
    query = {**defaults, **request.GET.dict()}
    form = PowerForm(query, placements=placements)
    raw = [s.strip() for s in query["shares"].split(",") if s.strip()]
    bad_shares = [s for s in raw if not (s.isascii() and s.isdigit() and len(s) < 4 and int(s) <= 100)]
    if not form.is_valid() or bad_shares or not 2 <= len(raw) <= 4:
        errors = [f"{form.fields[k].label}: {e}" for k, errs in form.errors.items() for e in errs]
        if bad_shares or not 2 <= len(raw) <= 4:
            errors.append(_("Traffic (%): give 2 to 4 shares, each a whole number from 0 to 100."))
        return render(request, "experiments/_power.html", {"power_errors": errors}, status=400)
    estimate = selectors.power_estimate(form.cleaned_data["placement"], [int(s) for s in raw], **form.power_inputs())
    return render(request, "experiments/_power.html", {"power": estimate})


@store_view
def detail(request: HttpRequest, experiment_id: int) -> HttpResponse:
    exp = _get(experiment_id)
    try:
        mde = float(request.GET.get("mde", "0.1"))
    except ValueError:
        mde = 0.1
    # NaN passes float() and both bounds (every comparison is False): take the default.
    mde = min(max(mde, 0.005), 5.0) if math.isfinite(mde) else 0.1
    results = selectors.experiment_results(exp, mde=mde)
    draft_power = None
    if exp.status == ExperimentStatus.DRAFT:
        # Before a start: how long this split needs at the placement's traffic (CTR, alpha 0.05, power 0.8).
        draft_power = selectors.power_estimate(exp.placement, [v.traffic for v in exp.variants.all()], mde=mde)
    context = {
        "section": SECTION,
        "store_slug": request.store.slug,
        "is_merchant": request.membership.is_merchant,
        "experiment": exp,
        "results": results,
        "mde": mde,
        "power": draft_power,
        "figs": {
            m: figure_json(charts.variant_figure(results["variants"], m))
            for m in ("ctr", "conversion", "revenue_per_customer")
        },
    }
    return render(request, "experiments/detail.html", context)


def _action(request: HttpRequest, experiment_id: int, action: Any) -> HttpResponse:
    exp = _get(experiment_id)
    before = exp.status
    try:
        action(exp)
    except services.ExperimentError as exc:
        messages.error(request, str(exc))
    else:
        if exp.status != before:
            summary = f"experiment #{exp.pk} {exp.name} on {exp.placement}: {before} → {exp.status}"
            record_change(request.store, request.user, ChangeKind.EXPERIMENT, summary, obj=exp)
    return redirect(_detail_url(request, exp))


@store_view(merchant_only=True)
@require_POST
def start(request: HttpRequest, experiment_id: int) -> HttpResponse:
    if request.POST.get("confirm") != "yes":
        messages.error(
            request, _("Tick the confirmation to start: the variants go live for this placement's shoppers.")
        )
        return redirect(_detail_url(request, _get(experiment_id)))
    return _action(request, experiment_id, services.start_experiment)


@store_view
@require_POST
def stop(request: HttpRequest, experiment_id: int) -> HttpResponse:
    return _action(request, experiment_id, services.stop_experiment)


@store_view(merchant_only=True)
@require_http_methods(["GET", "POST"])
def promote(request: HttpRequest, experiment_id: int) -> HttpResponse:
    """GET (or a POST without ``confirm``) shows the figures and asks; a confirmed POST promotes.

    When the evidence is thin (few impressions, no significant result) the page says so and the
    merchant must tick "promote anyway", which is recorded with the promotion.
    """
    exp = _get(experiment_id)
    raw = request.POST.get("variant") or request.GET.get("variant") or ""
    # A non-numeric id made the lookup raise ValueError (a 500, issue 12); isdigit() alone accepts "²".
    if not (raw.isascii() and raw.isdigit() and len(raw) < 19):
        raise Http404("No such variant")
    variant = Variant.objects.filter(pk=int(raw), experiment=exp).first()
    if variant is None:
        raise Http404("No such variant")
    check = selectors.promotion_check(exp, variant)
    override = request.POST.get("promote_anyway") == "on"
    confirmed = request.method == "POST" and request.POST.get("confirm") == "yes"
    if not confirmed or check["blockers"] or (check["warnings"] and not override):
        context = {
            "section": SECTION,
            "store_slug": request.store.slug,
            "experiment": exp,
            "variant": variant,
            "check": check,
            "needs_override": bool(check["warnings"]) and confirmed and not override,
        }
        return render(request, "experiments/promote_confirm.html", context, status=400 if confirmed else 200)
    try:
        outcome = services.promote_variant(exp, variant, user=request.user, override=override)
    except Exception as exc:  # noqa: BLE001 - shown to the merchant; e.g. a corrupt artifact
        messages.error(request, str(exc))
    else:
        summary = f"experiment #{exp.pk} {exp.name}: promoted {variant.name}" + (" (anyway)" if override else "")
        record_change(
            request.store, request.user, ChangeKind.EXPERIMENT, summary, obj=exp, details={"outcome": outcome}
        )
        # The outcome is the service's English line (also in the change record); the flash reads it translated.
        shown = {"name": variant.name, "outcome": translate_reason(outcome)}
        messages.success(request, _("Promoted %(name)s: %(outcome)s.") % shown)
    return redirect(_detail_url(request, exp))
