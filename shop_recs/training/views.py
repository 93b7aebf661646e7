"""The Jobs page: start training, watch progress live, browse history, activate or roll back, and
set the store's scheduled retraining.

Merchants and analysts may start runs; only merchants may change which model is live or when the
store retrains on its own (analysts see the schedule read-only).
"""

from __future__ import annotations

from datetime import UTC

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from shop_recs.platform.periodic import periodic_status
from shop_recs.stores.access import store_view
from shop_recs.training import activation, schedule, selectors, services
from shop_recs.training.config import training_config
from shop_recs.training.errors import TrainingAlreadyRunning, TrainingError
from shop_recs.training.forms import StartTrainingForm, TrainingScheduleForm
from shop_recs.training.models import ModelVersion, TrainingRun


def _jobs_url(request: HttpRequest) -> str:
    return reverse("recommend:jobs", kwargs={"store_slug": request.store.slug})


@store_view
@require_GET
def jobs(request: HttpRequest) -> HttpResponse:
    return render(request, "recommend/jobs.html", _context(request))


def _store_training_config(request: HttpRequest) -> tuple[list[str], dict]:
    """The store's promoted training configuration and gate (set on the Evaluation pages)."""
    return training_config(request.store)


def _context(
    request: HttpRequest,
    form: StartTrainingForm | None = None,
    schedule_form: TrainingScheduleForm | None = None,
) -> dict:
    """The Jobs page; pass a bound form to show its errors, the other one is built unbound."""
    algorithms, params = _store_training_config(request)
    if form is None:
        form = StartTrainingForm(initial={"algorithms": algorithms, "max_drop": params["_gate"].get("max_drop")})
    row = schedule.current_schedule(request.store)
    if schedule_form is None:
        schedule_form = TrainingScheduleForm.for_schedule(row)
    return {
        "section": "jobs",
        "form": form,
        "runs": selectors.recent_runs(),
        "current_run": selectors.current_run(),
        "active_version": selectors.active_version(),
        "versions": selectors.versions(),
        "is_merchant": request.membership.is_merchant,
        "store_slug": request.store.slug,
        "schedule": row,
        "schedule_form": schedule_form,
        # What an empty algorithm list on the schedule resolves to when a scheduled run starts.
        "schedule_default_algorithms": algorithms,
        "schedule_overdue": bool(row and row.enabled and row.next_due_at and row.next_due_at <= timezone.now()),
        # Periodic (beat) jobs: when each last ran, what it did for this store, which are overdue.
        "periodic_jobs": periodic_status(request.store.pk),
        "periodic_embedded": settings.CELERY_TASK_ALWAYS_EAGER,
    }


@store_view
@require_POST
def start(request: HttpRequest) -> HttpResponse:
    form = StartTrainingForm(request.POST)
    if not form.is_valid():
        return render(request, "recommend/jobs.html", _context(request, form), status=400)
    # The promoted per-algorithm parameters apply to whichever algorithms are chosen here; the
    # form's gate overrides the store's default.
    params = _store_training_config(request)[1]
    params.update(form.training_params())
    try:
        run = services.start_training(request.store, form.cleaned_data["algorithms"], params, request.user)
    except TrainingAlreadyRunning as exc:
        messages.error(
            request,
            _("Training run #%(id)s is already in progress for this store.") % {"id": exc.run.pk}
            if exc.run
            else str(exc),
        )
        return redirect(_jobs_url(request))
    messages.success(request, _("Training run #%(id)s started.") % {"id": run.pk})
    return redirect(_jobs_url(request))


@store_view(merchant_only=True)
@require_POST
def save_schedule(request: HttpRequest) -> HttpResponse:
    form = TrainingScheduleForm(request.POST)
    if not form.is_valid():
        return render(request, "recommend/jobs.html", _context(request, schedule_form=form), status=400)
    row = schedule.update_schedule(request.store, **form.schedule_values())
    if row.enabled:
        messages.success(
            request,
            _("Schedule saved. The next scheduled run is due %(when)s UTC.")
            % {"when": row.next_due_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M")},
        )
    else:
        messages.success(request, _("Schedule saved. Scheduled retraining is off."))
    return redirect(_jobs_url(request))


@store_view
@require_GET
def run_status(request: HttpRequest, run_id: int) -> JsonResponse:
    try:
        run = selectors.get_run(run_id)
    except TrainingRun.DoesNotExist:
        raise Http404("No such run")
    return JsonResponse(selectors.run_status_payload(run))


def _version_or_404(version_id: int) -> ModelVersion:
    try:
        return ModelVersion.objects.get(pk=version_id)
    except ModelVersion.DoesNotExist:
        raise Http404("No such model version")


def _confirm_change(request: HttpRequest, version: ModelVersion, action: str) -> HttpResponse:
    """The confirmation page of an activation or rollback: what goes live, what it replaces, the figures."""
    active = selectors.active_version()
    context = {
        "section": "jobs",
        "store_slug": request.store.slug,
        "version": version,
        "active": active,
        "action": action,
        "run": version.run,
        "coverage_new": _coverage(version),
        "coverage_live": _coverage(active),
    }
    return render(request, "recommend/confirm_activation.html", context)


def _coverage(version: ModelVersion | None) -> str:
    value = ((version and version.metrics) or {}).get("coverage@10")
    return f"{value:.1%}" if isinstance(value, (int, float)) else ""


def _change_live_model(request: HttpRequest, version_id: int, action: str) -> HttpResponse:
    """Activate or roll back: GET, or a POST without ``confirm``, shows the confirmation page."""
    version = _version_or_404(version_id)
    if request.method != "POST" or request.POST.get("confirm") != "yes":
        return _confirm_change(request, version, action)
    note = (request.POST.get("reason") or "").strip()
    try:
        if action == "rollback":
            activation.rollback_to(version, user=request.user, reason=note or "rolled back on the Jobs page")
        else:
            activation.activate_version(version, user=request.user, reason=note or "activated on the Jobs page")
    except TrainingError as exc:
        messages.error(request, _("Could not activate version %(id)s: %(error)s") % {"id": version.pk, "error": exc})
    else:
        messages.success(request, _("Version %(id)s is now active.") % {"id": version.pk})
    return redirect(_jobs_url(request))


@store_view(merchant_only=True)
@require_http_methods(["GET", "POST"])
def activate(request: HttpRequest, version_id: int) -> HttpResponse:
    return _change_live_model(request, version_id, "activate")


@store_view(merchant_only=True)
@require_http_methods(["GET", "POST"])
def rollback(request: HttpRequest, version_id: int) -> HttpResponse:
    return _change_live_model(request, version_id, "rollback")
