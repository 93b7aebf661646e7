"""Experiments pages: online metrics, the experiment list, results; create/stop (analysts too), start and
promote (merchants).

Analysts and merchants may create and stop experiments (analysis). Starting one changes what a share
of shoppers sees and promoting a winner changes what every shopper sees, so both are for merchants.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from analytics.experiments import charts, selectors, services
from analytics.experiments.forms import ExperimentForm
from shop_recs.platform.charts import figure_json
from shop_recs.serving.audit import record_change
from shop_recs.serving.models import ChangeKind, Experiment, Variant
from shop_recs.stores.access import store_view
from shop_recs.training.models import ModelVersion

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
    context = {
        "section": SECTION,
        "store_slug": request.store.slug,
        "is_merchant": request.membership.is_merchant,
        "experiments": Experiment.objects.prefetch_related("variants"),
        "online": online,
        "metric": metric,
        "metrics": charts.METRIC_LABELS,
        "days": days,
        "daily_fig": figure_json(charts.daily_metric_figure(online["daily"], metric)),
        "exposure": selectors.catalog_exposure(days),
        "form": ExperimentForm(versions=ModelVersion.objects.all()[:50]),
    }
    return render(request, "experiments/index.html", context)


@store_view
@require_POST
def create(request: HttpRequest) -> HttpResponse:
    form = ExperimentForm(request.POST, versions=ModelVersion.objects.all()[:50])
    if form.is_valid():
        variants = form.variants()
        if form.is_valid():
            try:
                exp = services.create_experiment(
                    request.store,
                    name=form.cleaned_data["name"],
                    placement=form.cleaned_data["placement"],
                    description=form.cleaned_data["description"],
                    variants=variants,
                    user=request.user,
                )
            except services.ExperimentError as exc:
                messages.error(request, str(exc))
            else:
                return redirect(_detail_url(request, exp))
    else:
        messages.error(request, f"Invalid experiment: {form.errors.as_text()}")
    return redirect(reverse("experiments:index", kwargs={"store_slug": request.store.slug}))


@store_view
def detail(request: HttpRequest, experiment_id: int) -> HttpResponse:
    exp = _get(experiment_id)
    try:
        mde = float(request.GET.get("mde", "0.1"))
    except ValueError:
        mde = 0.1
    mde = min(max(mde, 0.005), 5.0)
    results = selectors.experiment_results(exp, mde=mde)
    context = {
        "section": SECTION,
        "store_slug": request.store.slug,
        "is_merchant": request.membership.is_merchant,
        "experiment": exp,
        "results": results,
        "mde": mde,
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
        messages.success(request, _("Promoted %(name)s: %(outcome)s.") % {"name": variant.name, "outcome": outcome})
    return redirect(_detail_url(request, exp))
