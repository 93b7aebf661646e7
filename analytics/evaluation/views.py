"""The evaluation pages: start runs and tuning jobs, watch them, read the charts, compare, promote.

Analysts and merchants may start runs and jobs (analysis); only merchants may change what the store
trains (promote a configuration) or its monitoring settings.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from analytics.evaluation import charts, selectors, services, tuning
from analytics.evaluation.forms import EvaluationSettingsForm, StartEvaluationForm, StartTuningForm
from analytics.evaluation.models import EvaluationRun, JobStatus, TuningJob
from shop_recs.stores.access import store_view
from shop_recs.training import config as training_config_module
from shop_recs.training.models import StoreTrainingConfig

SECTION = "evaluation"
BIAS_LABELS = {
    "catalog": gettext_lazy("Catalogue"),
    "test": gettext_lazy("Bought in test"),
    "axis": gettext_lazy("Item popularity (distinct customers in train)"),
}
SLICE_LABELS = {"cold": gettext_lazy("Cold (≤ 5 items)"), "warm": gettext_lazy("Warm (> 5 items)")}
TRIAL_SORTS = {"score": "-score", "algorithm": "algorithm", "seconds": "seconds", "position": "position"}


def _index_url(request: HttpRequest) -> str:
    return reverse("evaluation:index", kwargs={"store_slug": request.store.slug})


def _fig(fig: Any) -> dict:
    return fig.to_plotly_json() if hasattr(fig, "to_plotly_json") else fig


def _json_fig(fig: Any) -> Any:

    return json.loads(fig.to_json())


def _index_context(request: HttpRequest, **forms: Any) -> dict[str, Any]:
    store = request.store
    history = selectors.version_history()
    settings_row = training_config_module.evaluation_settings(store)
    config = StoreTrainingConfig.objects.filter(store=store).select_related("source_job").first()
    return {
        "section": SECTION,
        "store_slug": store.slug,
        "is_merchant": request.membership.is_merchant,
        "eval_form": forms.get("eval_form") or StartEvaluationForm(prefix="eval"),
        "tuning_form": forms.get("tuning_form") or StartTuningForm(prefix="tune"),
        "settings_form": forms.get("settings_form")
        or EvaluationSettingsForm(
            initial={
                "max_metric_drop": settings_row.max_metric_drop,
                "min_lift": settings_row.min_lift,
                "max_coverage_loss": settings_row.max_coverage_loss,
            }
        ),
        "runs": selectors.recent_runs(),
        "jobs": selectors.recent_tuning_jobs(),
        "active_runs": [r for r in selectors.recent_runs(5) if not r.is_finished],
        "active_jobs": [j for j in selectors.recent_tuning_jobs(5) if not j.is_finished],
        "training_config": config,
        "gate": training_config_module.store_gate_config(store),
        "figures": {"versions": _json_fig(charts.versions_figure(history))} if history else {},
    }


@store_view
@require_GET
def index(request: HttpRequest) -> HttpResponse:
    return render(request, "evaluation/index.html", _index_context(request))


@store_view
@require_POST
def start_run(request: HttpRequest) -> HttpResponse:
    form = StartEvaluationForm(request.POST, prefix="eval")
    if not form.is_valid():
        return render(request, "evaluation/index.html", _index_context(request, eval_form=form), status=400)
    run = services.start_evaluation(
        request.store,
        form.cleaned_data["algorithms"],
        form.cleaned_data["protocol"],
        form.protocol_params(),
        form.cleaned_data["ks"],
        form.cleaned_data["auto_tune"],
        request.user,
    )
    messages.success(request, _("Evaluation run #%(id)s started.") % {"id": run.pk})
    return redirect(reverse("evaluation:run", kwargs={"store_slug": request.store.slug, "eval_run_id": run.pk}))


def _run_or_404(run_id: int) -> EvaluationRun:
    try:
        return selectors.get_run(run_id)
    except EvaluationRun.DoesNotExist:
        raise Http404("No such evaluation run") from None


def _job_or_404(job_id: int) -> TuningJob:
    try:
        return selectors.get_tuning_job(job_id)
    except TuningJob.DoesNotExist:
        raise Http404("No such tuning job") from None


def run_figures(results: dict[str, Any], metric: str, curve_metric: str = "recall") -> dict[str, dict]:
    """Every figure of one run's page, as plotly JSON (the view and the tests use the same builder)."""
    return {
        "bars": _json_fig(charts.metric_bars_figure(results, metric)),
        "curves": _json_fig(charts.k_curves_figure(results, curve_metric)),
        "coverage": _json_fig(charts.tradeoff_figure(results, metric, "coverage")),
        "novelty": _json_fig(charts.tradeoff_figure(results, metric, "novelty")),
        "bias": _json_fig(charts.popularity_bias_figure(results, BIAS_LABELS)),
        "slices": _json_fig(charts.slices_figure(results, metric, SLICE_LABELS)),
    }


@store_view
@require_GET
def run_detail(request: HttpRequest, eval_run_id: int) -> HttpResponse:
    run = _run_or_404(eval_run_id)
    results = run.results or {}
    ks = results.get("ks") or run.ks or [10]
    metric_choices = [f"{m}@{k}" for k in ks for m in services.CI_METRICS]
    default_metric = "ndcg@10" if "ndcg@10" in metric_choices else f"ndcg@{ks[-1]}"
    metric = request.GET.get("metric") if request.GET.get("metric") in metric_choices else default_metric
    curve_metric = request.GET.get("curve") if request.GET.get("curve") in services.CI_METRICS else "recall"
    compare = None
    compare_figure = None
    raw = request.GET.get("compare", "")
    if raw:
        if not (raw.isascii() and raw.isdigit() and len(raw) < 19):  # isdigit() alone accepts "²"
            raise Http404("No such evaluation run")
        compare = _run_or_404(int(raw))
        if compare.status == JobStatus.SUCCEEDED and run.status == JobStatus.SUCCEEDED:
            compare_figure = _json_fig(
                charts.compare_figure(results, compare.results, metric, (f"#{run.pk}", f"#{compare.pk}"))
            )
    figures = run_figures(results, metric, curve_metric) if run.status == JobStatus.SUCCEEDED and results else {}
    if compare_figure:
        figures["compare"] = compare_figure
    table = []
    for name in charts.algorithm_order(results):
        entry = results["algorithms"][name]
        table.append(
            {"name": name, **entry, "value": entry["metrics"].get(metric), "interval": entry["ci"].get(metric)}
        )
    return render(
        request,
        "evaluation/run.html",
        {
            "section": SECTION,
            "store_slug": request.store.slug,
            "run": run,
            "results": results,
            "table": table,
            "metric": metric,
            "metric_choices": metric_choices,
            "curve_metric": curve_metric,
            "curve_choices": services.CI_METRICS,
            "main_k": results.get("main_k"),
            "compare": compare,
            "compare_table": _compare_table(results, compare.results if compare else {}, metric) if compare else [],
            "other_runs": [r for r in selectors.finished_runs() if r.pk != run.pk],
            "figures": figures,
        },
    )


def _compare_table(left: dict[str, Any], right: dict[str, Any], metric: str) -> list[dict[str, Any]]:
    rows = []
    first = charts.algorithm_order(left)
    names = first + [a for a in charts.algorithm_order(right) if a not in first]
    for name in names:
        a = (left.get("algorithms") or {}).get(name) or {}
        b = (right.get("algorithms") or {}).get(name) or {}
        va = (a.get("metrics") or {}).get(metric)
        vb = (b.get("metrics") or {}).get(metric)
        rows.append(
            {
                "name": name,
                "left": va,
                "left_ci": (a.get("ci") or {}).get(metric),
                "right": vb,
                "right_ci": (b.get("ci") or {}).get(metric),
                "delta": (vb - va) if va is not None and vb is not None else None,
            }
        )
    return rows


@store_view
@require_GET
def run_status(request: HttpRequest, eval_run_id: int) -> JsonResponse:
    return JsonResponse(selectors.run_status_payload(_run_or_404(eval_run_id)))


@store_view
@require_POST
def start_tuning(request: HttpRequest) -> HttpResponse:
    form = StartTuningForm(request.POST, prefix="tune")
    if not form.is_valid():
        return render(request, "evaluation/index.html", _index_context(request, tuning_form=form), status=400)
    job = tuning.start_tuning(
        request.store,
        form.cleaned_data["algorithms"],
        form.cleaned_data["protocol"],
        form.protocol_params(),
        form.cleaned_data["metric"],
        request.user,
        n_iter=form.cleaned_data["n_iter"],
    )
    messages.success(request, _("Tuning job #%(id)s started.") % {"id": job.pk})
    return redirect(reverse("evaluation:tuning", kwargs={"store_slug": request.store.slug, "tuning_job_id": job.pk}))


@store_view
@require_GET
def tuning_detail(request: HttpRequest, tuning_job_id: int) -> HttpResponse:
    job = _job_or_404(tuning_job_id)
    sort = request.GET.get("sort") if request.GET.get("sort") in TRIAL_SORTS else "score"
    trials = selectors.trials(job)
    key = TRIAL_SORTS[sort]
    reverse_order = key.startswith("-")
    field = key.lstrip("-")
    # None (unfinished or failed) sorts last whatever the direction.
    trials.sort(
        key=lambda t: (
            (getattr(t, field) is None, getattr(t, field) or 0) if field != "algorithm" else (False, t.algorithm)
        )
    )
    if reverse_order:
        finished = [t for t in trials if getattr(t, field) is not None]
        trials = list(reversed(finished)) + [t for t in trials if getattr(t, field) is None]
    best_ids = {entry["trial"] for entry in (job.leaderboard or {}).values()}
    figure_rows = [{"algorithm": t.algorithm, "params": t.params, "score": t.score} for t in selectors.trials(job)]
    return render(
        request,
        "evaluation/tuning.html",
        {
            "section": SECTION,
            "store_slug": request.store.slug,
            "job": job,
            "trials": trials,
            "sort": sort,
            "best_ids": best_ids,
            "leaderboard": sorted((job.leaderboard or {}).items(), key=lambda kv: -(kv[1].get("score") or 0)),
            "is_merchant": request.membership.is_merchant,
            "figures": {"trials": _json_fig(charts.tuning_figure(figure_rows, job.metric))} if job.is_finished else {},
        },
    )


@store_view
@require_GET
def tuning_status(request: HttpRequest, tuning_job_id: int) -> JsonResponse:
    return JsonResponse(selectors.tuning_status_payload(_job_or_404(tuning_job_id)))


@store_view(merchant_only=True)
@require_POST
def promote(request: HttpRequest, tuning_job_id: int) -> HttpResponse:
    job = _job_or_404(tuning_job_id)
    algorithm = request.POST.get("algorithm") or None
    try:
        tuning.promote_tuning(job, request.user, algorithm)
    except services.EvaluationError as exc:
        messages.error(request, _("Could not promote: %(error)s") % {"error": exc})
    else:
        messages.success(
            request,
            _("The store now trains %(algo)s with the tuned parameters.") % {"algo": algorithm or job.best},
        )
    return redirect(reverse("evaluation:tuning", kwargs={"store_slug": request.store.slug, "tuning_job_id": job.pk}))


@store_view(merchant_only=True)
@require_POST
def update_settings(request: HttpRequest) -> HttpResponse:
    form = EvaluationSettingsForm(request.POST)
    if not form.is_valid():
        return render(request, "evaluation/index.html", _index_context(request, settings_form=form), status=400)
    data = form.cleaned_data
    training_config_module.update_settings(
        request.store, data["max_metric_drop"], data.get("min_lift"), data.get("max_coverage_loss")
    )
    messages.success(request, _("Monitoring settings saved."))
    return redirect(_index_url(request))
