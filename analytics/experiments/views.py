"""Experiments pages: online metrics, the experiment list, results; start/stop (analysts too), promote (merchants).

Analysts and merchants may create, start and stop experiments (analysis); promoting a winner
changes what the store serves, so it is for merchants only.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from analytics.experiments import charts, selectors, services
from analytics.experiments.forms import ExperimentForm
from shop_recs.serving.models import Experiment, Variant
from shop_recs.stores.access import store_view
from shop_recs.training.models import ModelVersion

SECTION = "experiments"


def _fig(fig: Any) -> dict:
    return json.loads(fig.to_json())


def _get(experiment_id: int) -> Experiment:
    exp = Experiment.objects.filter(pk=experiment_id).first()
    if exp is None:
        raise Http404("No such experiment")
    return exp


def _detail_url(request: HttpRequest, exp: Experiment) -> str:
    return reverse("experiments:detail", kwargs={"store_slug": request.store.slug, "experiment_id": exp.pk})


@store_view
def index(request: HttpRequest) -> HttpResponse:
    days = max(1, min(int(request.GET.get("days", 30) or 30), 365)) if request.GET.get("days", "30").isdigit() else 30
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
        "daily_fig": _fig(charts.daily_metric_figure(online["daily"], metric)),
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
            m: _fig(charts.variant_figure(results["variants"], m))
            for m in ("ctr", "conversion", "revenue_per_customer")
        },
    }
    return render(request, "experiments/detail.html", context)


def _action(request: HttpRequest, experiment_id: int, action: Any) -> HttpResponse:
    exp = _get(experiment_id)
    try:
        action(exp)
    except services.ExperimentError as exc:
        messages.error(request, str(exc))
    return redirect(_detail_url(request, exp))


@store_view
@require_POST
def start(request: HttpRequest, experiment_id: int) -> HttpResponse:
    return _action(request, experiment_id, services.start_experiment)


@store_view
@require_POST
def stop(request: HttpRequest, experiment_id: int) -> HttpResponse:
    return _action(request, experiment_id, services.stop_experiment)


@store_view
@require_POST
def promote(request: HttpRequest, experiment_id: int) -> HttpResponse:
    if not request.membership.is_merchant:
        raise PermissionDenied("Only merchants can promote a variant.")
    exp = _get(experiment_id)
    variant = Variant.objects.filter(pk=request.POST.get("variant"), experiment=exp).first()
    if variant is None:
        raise Http404("No such variant")
    try:
        outcome = services.promote_variant(exp, variant, user=request.user)
    except Exception as exc:  # noqa: BLE001 - shown to the merchant; e.g. a corrupt artifact
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Promoted {variant.name}: {outcome}.")
    return redirect(_detail_url(request, exp))
