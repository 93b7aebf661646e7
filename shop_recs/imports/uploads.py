"""Dashboard uploads: store the file first, import it in a job with progress (issue 12, §7).

An upload request only copies the file under ``VAR_DIR/imports/`` and creates a queued
:class:`ImportJob`; the import itself runs through the one job lifecycle of ``platform.jobs``
(``enqueue_on_commit``: the web process's background pool in embedded mode, a Celery worker with a
broker), so a 49 MiB file no longer holds a request (and a gunicorn worker) for half a minute. The
job records its stage, rows done and rows in the file on the row, which the import page polls.

The stored file is deleted once the import succeeded (or was refused as a duplicate: nothing to
retry); after a failure it is kept for ``KEEP_FAILED_DAYS`` so the merchant (or an operator) can
look at it, then pruned by the next upload.
"""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from shop_recs.imports.importers import file_fingerprint, import_catalog, import_events
from shop_recs.imports.models import ImportJob, ImportKind, ImportStatus
from shop_recs.platform import executor, jobs
from shop_recs.stores.models import Store

logger = logging.getLogger(__name__)

IMPORTERS = {ImportKind.CATALOG.value: import_catalog, ImportKind.EVENTS.value: import_events}
#: How long the file of a failed import is kept (then the next upload deletes it).
KEEP_FAILED_DAYS = 7
#: Seconds between two progress writes of a running import (PostgreSQL; see :class:`_Reporter`).
PROGRESS_SECONDS = 2.0
#: The folder under ``VAR_DIR`` the uploads are stored in (one sub-folder per store).
UPLOAD_DIR = "imports"


def upload_root() -> Path:
    return Path(settings.VAR_DIR) / UPLOAD_DIR


def store_upload(store: Store, kind: str, upload: Any, created_by: Any = None) -> ImportJob:
    """Save ``upload`` (a Django ``UploadedFile``) and queue its import; returns the queued job at once."""
    if kind not in IMPORTERS:
        raise ValueError(f"unknown import kind {kind!r}; expected one of {', '.join(IMPORTERS)}")
    prune_kept_files()
    folder = upload_root() / str(store.pk)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{uuid.uuid4().hex}{Path(upload.name).suffix.lower()}"
    with open(target, "wb") as fh:
        for chunk in upload.chunks():
            fh.write(chunk)
    job = ImportJob.all_stores.create(
        store=store,
        kind=kind,
        file_name=upload.name[:500],
        status=ImportStatus.QUEUED,
        stage="queued",
        stored_file=str(target.relative_to(settings.VAR_DIR)),
        created_by=created_by if getattr(created_by, "pk", None) else None,
    )
    from shop_recs.imports.tasks import run_import  # the task module imports this one

    if executor.current() is None and run_import.app.conf.task_always_eager:
        # No pool and no broker (a command, a shell, the test client): the caller imports the file
        # now, as enqueue_on_commit's eager path would, without waiting for a commit that a
        # surrounding test transaction never makes.
        run_import_job(job.pk)
    else:
        jobs.enqueue_on_commit(run_import, job)
    return job


def _claimable(job: ImportJob) -> bool:
    """Queued, or running under a worker that is gone: a redelivery after a killed worker takes over
    at once when the pid is visibly dead (same host), else once the heartbeat went stale."""
    if job.status == ImportStatus.QUEUED:
        return True
    if job.status != ImportStatus.RUNNING:
        return False
    if jobs.worker_gone(job.worker):
        return True
    return job.heartbeat_at is None or timezone.now() - job.heartbeat_at >= ImportJob.stale_after()


def run_import_job(job_id: int) -> ImportJob:
    """The body of the ``run_import`` task: claim the queued job, import its stored file, tidy up.

    Never raises for a bad file (the report is on the row); a redelivery of a finished job does nothing.
    """
    job = ImportJob.all_stores.select_related("store").get(pk=job_id)
    if job.is_finished or not _claimable(job):
        logger.info("import %s is %s; ignoring this delivery", job.pk, job.status)
        return job
    statuses = (ImportStatus.QUEUED, ImportStatus.RUNNING)
    if not jobs.claim(job, statuses=statuses, worker=jobs.worker_identity()):
        return job
    path = Path(settings.VAR_DIR) / job.stored_file if job.stored_file else None
    if path is None or not path.is_file():
        jobs.fail(job, "The uploaded file is no longer on the server; upload it again.")
        return job
    ImportJob.all_stores.filter(pk=job.pk).update(
        stage="counting rows",
        fingerprint=file_fingerprint(path),
        rows_total=count_rows(path),
        heartbeat_at=timezone.now(),
    )
    job.refresh_from_db()
    job.stage = "importing"
    job.save(update_fields=["stage"])
    reporter = _Reporter.start_for(job)
    try:
        IMPORTERS[job.kind](job.store, path, file_name=job.file_name, progress=reporter.add, job=job)
    finally:
        reporter.stop()
    job.refresh_from_db()
    if job.status in (ImportStatus.SUCCEEDED, ImportStatus.DUPLICATE):
        _delete_stored_file(job)
    return job


def count_rows(path: Path) -> int:
    """Data rows in the file, from its line count (1 MiB blocks; a CSV's header is not a row).

    An estimate for the progress bar: a quoted CSV cell spanning lines counts twice.
    """
    lines, last = 0, b"\n"
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
    if last != b"\n":
        lines += 1  # a last line without a newline
    has_header = path.suffix.lower() in (".csv", ".tsv", ".txt")  # JSONL has no header line
    return max(0, lines - 1) if has_header else lines


class _Reporter:
    """Counts the rows the importer wrote and publishes them on the job row every ``PROGRESS_SECONDS``.

    The import writes inside one transaction (all or nothing), so its own connection's updates would
    stay invisible until the end; this thread writes rows done, percent and the heartbeat through its
    own connection instead. PostgreSQL only: SQLite allows one writer, and the import is that writer
    (there the page shows the stages and the final report).
    """

    def __init__(self, job: ImportJob, threaded: bool) -> None:
        self.job_id, self.total, self.done = job.pk, job.rows_total or 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"import-progress-{job.pk}", daemon=True)
        self._threaded = threaded

    @classmethod
    def start_for(cls, job: ImportJob) -> _Reporter:
        reporter = cls(job, threaded=connection.vendor == "postgresql" and not connection.in_atomic_block)
        if reporter._threaded:
            reporter._thread.start()
        return reporter

    def add(self, rows: int) -> None:
        self.done += rows  # the importer's thread only; the reporter just reads the number

    def _publish(self) -> None:
        percent = min(99, int(100 * self.done / self.total)) if self.total else 0
        # status=running: never touch the row once the import's own transaction has finished it.
        ImportJob.all_stores.filter(pk=self.job_id, status=ImportStatus.RUNNING).update(
            rows_read=self.done, progress=percent, heartbeat_at=timezone.now()
        )

    def _run(self) -> None:
        try:
            while not self._stop.wait(PROGRESS_SECONDS):
                self._publish()
        except Exception:  # noqa: BLE001 - a missed progress write is not worth failing the import for
            logger.exception("import %s: progress thread stopped", self.job_id)
        finally:
            connection.close()  # this thread's own connection

    def stop(self) -> None:
        self._stop.set()
        if self._threaded:
            self._thread.join(timeout=30)


def _delete_stored_file(job: ImportJob) -> None:
    if job.stored_file:
        (Path(settings.VAR_DIR) / job.stored_file).unlink(missing_ok=True)
        ImportJob.all_stores.filter(pk=job.pk).update(stored_file="")


def prune_kept_files(now: Any = None) -> int:
    """Delete the files of failed imports older than ``KEEP_FAILED_DAYS``; returns how many."""
    cutoff = (now or timezone.now()) - timedelta(days=KEEP_FAILED_DAYS)
    # all stores: housekeeping of the server's own disk, not a read of any store's data.
    old = ImportJob.all_stores.filter(status=ImportStatus.FAILED, finished_at__lt=cutoff).exclude(stored_file="")
    pruned = 0
    for job in old.only("pk", "stored_file"):
        _delete_stored_file(job)
        pruned += 1
    return pruned
