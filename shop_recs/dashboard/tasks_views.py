"""The Tasks page: every background job of the store, of every kind, in one list with live progress.

The kinds are found, not listed: every concrete :class:`~shop_recs.platform.jobs.JobRun` model of
the installed apps (training, profiles, evaluation, tuning, and whatever job row comes next) through
the app registry, plus the file imports (``ImportJob``, its own row shape, mapped onto the same
columns). The dashboard never imports analytics (see docs/architecture.md, layers). One SQL ``UNION
ALL`` of the scoped per-model querysets lists them newest first, so filters and pagination happen in
the database. The page polls :func:`task_status` (the rows' own status, never Celery's result store).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.paginator import Paginator
from django.db import models
from django.db.models import Case, CharField, F, IntegerField, Value, When
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET

from shop_recs.imports.messages import translate_message
from shop_recs.imports.models import ImportJob, ImportStatus
from shop_recs.platform.jobs import FINISHED_STATUSES, JobStatus, job_key, job_models
from shop_recs.platform.stages import stage_label
from shop_recs.stores.access import store_view

PAGE_SIZE = 25
#: At most this many rows per status poll (a page shows ``PAGE_SIZE``).
MAX_POLLED = 50

#: Short names of the kinds this codebase has; a job model added later shows its verbose name.
KIND_LABELS = {
    "training.trainingrun": gettext_lazy("Training"),
    "analytics.profilerun": gettext_lazy("Profiles and segments"),
    "evaluation.evaluationrun": gettext_lazy("Evaluation"),
    "evaluation.tuningjob": gettext_lazy("Tuning"),
    "imports.importjob": gettext_lazy("Import"),
}

#: The columns every kind is mapped onto, in this order (the ``UNION`` matches columns by position).
COLUMNS = (
    "t_kind",
    "t_id",
    "t_status",
    "t_stage",
    "t_progress",
    "t_error",
    "t_created",
    "t_started",
    "t_finished",
    "t_user",
)


@dataclass(frozen=True)
class TaskKind:
    """One kind of job row: its key (``app_label.model``), label and model."""

    key: str
    label: str
    model: type[models.Model]

    @property
    def is_import(self) -> bool:
        return self.model is ImportJob


def task_kinds() -> list[TaskKind]:
    """Every kind of job row, job models first (in app order), imports last."""
    found: list[type[models.Model]] = [*job_models(), ImportJob]
    return [
        TaskKind(m._meta.label_lower, str(KIND_LABELS.get(m._meta.label_lower) or capfirst(m._meta.verbose_name)), m)
        for m in found
    ]


def _import_status() -> Case:
    # "Already imported" wrote nothing and counts as done.
    return Case(
        When(status=ImportStatus.DUPLICATE, then=Value(JobStatus.SUCCEEDED.value)),
        default=F("status"),
        output_field=CharField(),
    )


def _rows(kind: TaskKind, status: str) -> models.QuerySet:
    """``kind``'s rows of the current store (the scoped manager), mapped onto :data:`COLUMNS`."""
    text, number = CharField(), IntegerField()
    if kind.is_import:
        qs = ImportJob.objects.annotate(
            t_kind=Value(kind.key, output_field=text),
            t_id=F("pk"),
            t_status=_import_status(),
            t_stage=F("stage"),
            t_progress=Case(
                When(status__in=[ImportStatus.QUEUED, ImportStatus.RUNNING], then=F("progress")),
                default=Value(100),
                output_field=number,
            ),
            t_error=Case(When(status=ImportStatus.FAILED, then=F("message")), default=Value(""), output_field=text),
            t_created=F("started_at"),
            t_started=F("started_at"),
            t_finished=F("finished_at"),
            t_user=F("created_by__username"),
        )
    else:
        qs = kind.model.objects.annotate(
            t_kind=Value(kind.key, output_field=text),
            t_id=F("pk"),
            t_status=F("status"),
            t_stage=F("stage"),
            t_progress=F("progress"),
            t_error=F("error"),
            t_created=F("created_at"),
            t_started=F("started_at"),
            t_finished=F("finished_at"),
            t_user=F("created_by__username"),
        )
    if status:
        qs = qs.filter(t_status=status)
    # No per-part ordering: SQLite refuses ORDER BY inside a compound SELECT; the union is ordered.
    return qs.order_by().values(*COLUMNS)


def list_tasks(kinds: list[TaskKind], status: str = "") -> models.QuerySet:
    """The current store's job rows of ``kinds`` (optionally one status), newest first."""
    parts = [_rows(k, status) for k in kinds]
    qs = parts[0].union(*parts[1:], all=True) if len(parts) > 1 else parts[0]
    return qs.order_by("-t_created", "-t_id")


def _status_labels() -> dict[str, str]:
    return {value: str(label) for value, label in JobStatus.choices}


def _decorate(row: dict[str, Any], labels: dict[str, str], kinds: dict[str, TaskKind]) -> dict[str, Any]:
    finished_at, started = row["t_finished"], row["t_started"]
    return {
        "key": f"{row['t_kind']}:{row['t_id']}",
        "kind": kinds[row["t_kind"]].label if row["t_kind"] in kinds else row["t_kind"],
        "id": row["t_id"],
        "status": row["t_status"],
        "status_label": labels.get(row["t_status"], row["t_status"]),
        "stage": stage_label(row["t_stage"]),
        "progress": row["t_progress"],
        # An import failure is the importer's English line: shown in the reader's language.
        "error": translate_message((row["t_error"] or "").strip()),
        "created_at": row["t_created"],
        "finished_at": finished_at,
        "duration": (finished_at - started).total_seconds() if finished_at and started else None,
        "user": row["t_user"] or "",
        "finished": row["t_status"] in FINISHED_STATUSES,
    }


@store_view
@require_GET
def tasks(request: HttpRequest) -> HttpResponse:
    """Every job of the store; ``?kind=`` (a kind key) and ``?status=`` filter, ``?page=`` pages."""
    all_kinds = task_kinds()
    by_key = {k.key: k for k in all_kinds}
    kind = request.GET.get("kind", "")
    status = request.GET.get("status", "")
    errors = []
    if kind and kind not in by_key:
        errors.append(_("Unknown kind “%(kind)s”.") % {"kind": kind})
        kind = ""
    if status and status not in JobStatus.values:
        errors.append(_("Unknown status “%(status)s”.") % {"status": status})
        status = ""
    page = Paginator(list_tasks([by_key[kind]] if kind else all_kinds, status), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    labels = _status_labels()
    rows = [_decorate(r, labels, by_key) for r in page.object_list]
    query = "&".join(f"{n}={v}" for n, v in (("kind", kind), ("status", status)) if v)
    return render(
        request,
        "dashboard/tasks.html",
        {
            "section": "tasks",
            "page": page,
            "rows": rows,
            "page_query": query,
            "kinds": all_kinds,
            "statuses": JobStatus.choices,
            "kind": kind,
            "status": status,
            "filter_errors": errors,
            "live": any(not r["finished"] for r in rows),
        },
        status=400 if errors else 200,
    )


def _payload(row: models.Model) -> dict[str, Any]:
    if isinstance(row, ImportJob):
        status = JobStatus.SUCCEEDED.value if row.status == ImportStatus.DUPLICATE else row.status
        return {
            "status": status,
            "status_label": _status_labels().get(status, status),
            "stage": stage_label(row.stage),
            "progress": row.progress if row.status in (ImportStatus.QUEUED, ImportStatus.RUNNING) else 100,
            "finished": status in FINISHED_STATUSES,
            "error": translate_message(row.message.splitlines()[0])
            if row.status == ImportStatus.FAILED and row.message
            else "",
        }
    return row.status_payload()


@store_view
@require_GET
def task_status(request: HttpRequest) -> JsonResponse:
    """``?key=app_label.model:pk`` (repeated, at most ``MAX_POLLED``): each row's live status.

    Rows of other stores are simply absent (the scoped managers never see them); a malformed key is
    a 400 with the reason.
    """
    by_key = {k.key: k for k in task_kinds()}
    keys = request.GET.getlist("key")
    if len(keys) > MAX_POLLED:
        return JsonResponse({"error": _("At most %(n)d keys per request.") % {"n": MAX_POLLED}}, status=400)
    wanted: dict[str, list[int]] = {}
    for key in keys:
        label, _sep, pk = key.rpartition(":")
        if label not in by_key or not (pk.isascii() and pk.isdigit() and len(pk) < 19):  # not "²", not 10**400
            return JsonResponse({"error": _("Unknown task key “%(key)s”.") % {"key": key}}, status=400)
        wanted.setdefault(label, []).append(int(pk))
    result = {}
    for label, pks in wanted.items():
        for row in by_key[label].model.objects.filter(pk__in=pks):
            result[job_key(type(row), row.pk)] = _payload(row)
    return JsonResponse({"tasks": result})
