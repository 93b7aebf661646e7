"""Dashboard pages for merchants: upload a catalog or events file, and see past imports."""

from __future__ import annotations

import tempfile
from pathlib import Path

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _

from shop_recs.imports.forms import UploadForm, upload_max_bytes
from shop_recs.imports.importers import import_catalog, import_events
from shop_recs.imports.models import ImportJob, ImportKind, ImportStatus
from shop_recs.stores.access import store_view

IMPORTERS = {ImportKind.CATALOG.value: import_catalog, ImportKind.EVENTS.value: import_events}


def run_uploaded_import(request: HttpRequest, kind: str, upload) -> ImportJob:
    """Copy the upload to a temporary file (keeping its suffix) and run the same service as the CLI."""
    suffix = Path(upload.name).suffix.lower()
    with tempfile.NamedTemporaryFile(suffix=suffix, prefix="upload-") as tmp:
        for chunk in upload.chunks():
            tmp.write(chunk)
        tmp.flush()
        return IMPORTERS[kind](request.store, Path(tmp.name), file_name=upload.name, created_by=request.user)


@store_view(merchant_only=True)
def index(request: HttpRequest) -> HttpResponse:
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        job = run_uploaded_import(request, form.cleaned_data["kind"], form.cleaned_data["file"])
        if job.status == ImportStatus.SUCCEEDED:
            messages.success(
                request,
                _("Imported %(n)s rows from %(file)s.") % {"n": f"{job.rows_imported:,}", "file": job.file_name},
            )
        elif job.status == ImportStatus.DUPLICATE:
            messages.warning(request, _("This file was already imported; nothing was written."))
        else:
            messages.error(request, _("The file was rejected and nothing was imported. See the errors below."))
        return redirect("imports:detail", store_slug=request.store.slug, job_id=job.pk)
    page = Paginator(ImportJob.objects.select_related("created_by").order_by("-started_at", "-id"), 25).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "imports/index.html",
        {"form": form, "page": page, "jobs": page.object_list, "section": "imports", "max_mb": _max_mb()},
    )


@store_view(merchant_only=True)
def detail(request: HttpRequest, job_id: int) -> HttpResponse:
    # The active store scope limits the lookup to this store: another store's job is a 404.
    job = get_object_or_404(ImportJob.objects.select_related("created_by"), pk=job_id)
    return render(request, "imports/detail.html", {"job": job, "section": "imports"})


def _max_mb() -> int:
    return upload_max_bytes() // (1024 * 1024)
