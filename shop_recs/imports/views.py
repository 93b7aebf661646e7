"""Dashboard pages for merchants: upload a catalog or events file, follow its import, see past imports."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from shop_recs.imports.forms import UploadForm, upload_max_bytes
from shop_recs.imports.messages import translate_message
from shop_recs.imports.models import ImportJob, ImportStatus
from shop_recs.imports.uploads import store_upload
from shop_recs.stores.access import store_view


@store_view(merchant_only=True)
def index(request: HttpRequest) -> HttpResponse:
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        # Stored and queued: the import runs in a job (after the response in embedded mode).
        job = store_upload(request.store, form.cleaned_data["kind"], form.cleaned_data["file"], request.user)
        job.refresh_from_db()
        _tell_outcome(request, job)
        return redirect("imports:detail", store_slug=request.store.slug, job_id=job.pk)
    page = Paginator(ImportJob.objects.select_related("created_by").order_by("-started_at", "-id"), 25).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "imports/index.html",
        {"form": form, "page": page, "jobs": page.object_list, "section": "imports", "max_mb": _max_mb()},
    )


def _tell_outcome(request: HttpRequest, job: ImportJob) -> None:
    if job.status == ImportStatus.SUCCEEDED:
        messages.success(
            request, _("Imported %(n)s rows from %(file)s.") % {"n": f"{job.rows_imported:,}", "file": job.file_name}
        )
    elif job.status == ImportStatus.DUPLICATE:
        messages.warning(request, _("This file was already imported; nothing was written."))
    elif job.status == ImportStatus.FAILED:
        messages.error(request, _("The file was rejected and nothing was imported. See the errors below."))
    else:
        messages.info(request, _("%(file)s was uploaded; it is being imported now.") % {"file": job.file_name})


@store_view(merchant_only=True)
def detail(request: HttpRequest, job_id: int) -> HttpResponse:
    # The active store scope limits the lookup to this store: another store's job is a 404.
    job = get_object_or_404(ImportJob.objects.select_related("created_by"), pk=job_id)
    return render(request, "imports/detail.html", {"job": job, "section": "imports", "live": status_payload(job)})


@store_view(merchant_only=True)
@require_GET
def status(request: HttpRequest, job_id: int) -> JsonResponse:
    """What the import page polls while the job works: the row's own columns, never Celery's results."""
    job = get_object_or_404(ImportJob.objects.all(), pk=job_id)
    return JsonResponse(status_payload(job))


def status_payload(job: ImportJob) -> dict[str, Any]:
    rows = _("%(done)s of %(total)s rows") % {"done": f"{job.rows_read:,}", "total": f"{job.rows_total or 0:,}"}
    stage = _stage_label(job.stage)
    return {
        "id": job.pk,
        "status": job.status,
        "status_label": str(job.get_status_display()),
        "stage": f"{stage} · {rows}" if job.rows_total is not None and not job.is_finished else stage,
        "progress": job.progress,
        "rows_done": job.rows_read,
        "rows_total": job.rows_total,
        "finished": job.is_finished,
        "error": translate_message((job.message or job.error).splitlines()[0])
        if job.status == ImportStatus.FAILED and (job.message or job.error)
        else "",
        "rows_imported": job.rows_imported,
        "error_count": job.error_count,
    }


def _stage_label(stage: str) -> str:
    labels = {
        "queued": _("waiting for a worker"),
        "starting": _("starting"),
        "counting rows": _("counting rows"),
        "importing": _("importing"),
        "done": _("done"),
    }
    return labels.get(stage, stage)


def _max_mb() -> int:
    return upload_max_bytes() // (1024 * 1024)
