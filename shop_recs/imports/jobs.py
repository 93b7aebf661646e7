"""Import jobs: the error report of a rejected file and the run of one importer as an :class:`ImportJob`.

Shared by the file importers (:mod:`.csv_importers`, :mod:`.uci`); see :mod:`.importers` for the rules.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from shop_recs.activity.ingest import write_events
from shop_recs.imports.models import ImportJob, ImportStatus
from shop_recs.stores.models import Store
from shop_recs.stores.scoping import store_scope

MAX_REPORTED_ERRORS = 100
EVENT_BATCH = 50_000  # rows per write_events call of the bulk writers (UCI import, demo seeder)

Progress = Callable[[int], None]


@dataclass(frozen=True)
class RowError:
    """One problem in the file; ``line`` is the 1-based physical line (the header is line 1)."""

    line: int
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "message": self.message}

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class ImportFailed(Exception):  # noqa: N818 - reads as an outcome at call sites
    """The file cannot be imported; nothing was written."""

    def __init__(self, errors: list[RowError], total: int | None = None) -> None:
        self.errors = errors[:MAX_REPORTED_ERRORS]
        self.total = total if total is not None else len(errors)
        head = "; ".join(str(e) for e in self.errors[:5])
        more = f" (and {self.total - 5} more)" if self.total > 5 else ""
        super().__init__(f"{self.total} error(s): {head}{more}")


class _Errors:
    """Collects row errors, keeping the first ``MAX_REPORTED_ERRORS`` and counting all."""

    def __init__(self) -> None:
        self.items: list[RowError] = []
        self.total = 0

    def add(self, line: int, message: str) -> None:
        self.total += 1
        if len(self.items) < MAX_REPORTED_ERRORS:
            self.items.append(RowError(line, message))

    def __bool__(self) -> bool:
        return self.total > 0

    def raise_if_any(self) -> None:
        if self.total:
            self.items.sort(key=lambda e: e.line)
            raise ImportFailed(self.items, self.total)


# --- Jobs ------------------------------------------------------------------------------------


def file_fingerprint(path: str | Path) -> str:
    """SHA-256 of the file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _start_job(store: Store, kind: str, path: Path, file_name: str | None, created_by) -> ImportJob:
    return ImportJob.all_stores.create(
        store=store,
        kind=kind,
        file_name=(file_name or path.name)[:500],
        fingerprint=file_fingerprint(path),
        status=ImportStatus.RUNNING,
        stage="importing",
        # Dated, so the stale sweep fails the row if this process dies before finishing it.
        heartbeat_at=timezone.now(),
        created_by=created_by if getattr(created_by, "pk", None) else None,
    )


def _previous_success(job: ImportJob) -> ImportJob | None:
    return (
        ImportJob.all_stores.filter(
            store_id=job.store_id, kind=job.kind, fingerprint=job.fingerprint, status=ImportStatus.SUCCEEDED
        )
        .exclude(pk=job.pk)
        .order_by("started_at")
        .first()
    )


def _mark_duplicate(job: ImportJob, previous: ImportJob | None) -> ImportJob:
    job.status = ImportStatus.DUPLICATE
    when = f" on {previous.started_at:%Y-%m-%d %H:%M} UTC" if previous else ""
    ref = f" by import #{previous.pk}{when}" if previous else ""
    job.message = f"This file was already imported{ref}; nothing was written."
    job.stage, job.progress = "done", 100
    job.finished_at = job.heartbeat_at = timezone.now()
    job.save()
    return job


def _run_job(job: ImportJob, body: Callable[[ImportJob], None], *, refuse_duplicates: bool) -> ImportJob:
    """Run ``body`` in one transaction; record success, failure (with errors) or duplicate."""
    if refuse_duplicates and (previous := _previous_success(job)) is not None:
        return _mark_duplicate(job, previous)
    try:
        with transaction.atomic(), store_scope(job.store_id):
            body(job)
            job.status = ImportStatus.SUCCEEDED
            job.stage, job.progress = "done", 100
            job.finished_at = job.heartbeat_at = timezone.now()
            job.save()
    except ImportFailed as exc:
        job.status = ImportStatus.FAILED
        job.rows_imported = 0
        job.errors = [e.as_dict() for e in exc.errors]
        job.error_count = exc.total
        job.message = "The file was rejected and nothing was imported: " + str(exc)
    except IntegrityError as exc:
        if refuse_duplicates and (previous := _previous_success(job)) is not None:
            # A concurrent import of the same file committed first.
            return _mark_duplicate(job, previous)
        job.status = ImportStatus.FAILED
        job.rows_imported = 0
        job.message = f"The database refused the data; nothing was imported: {exc}"
    except Exception as exc:
        job.status = ImportStatus.FAILED
        job.rows_imported = 0
        job.message = f"Internal error; nothing was imported: {exc!r}"
        job.finished_at = job.heartbeat_at = timezone.now()
        job.save()
        raise
    job.finished_at = job.heartbeat_at = timezone.now()
    job.save()
    return job


def _result_count(result: Any, name: str) -> int:
    if isinstance(result, dict):
        value = result.get(name, 0)
    else:
        value = getattr(result, name, 0)
    if isinstance(value, (list, tuple, set)):
        return len(value)
    return int(value or 0)


def write_event_batches(store_id: int, rows: Iterable[tuple], progress: Progress | None = None) -> int:
    """``write_events`` for a long stream of rows, ``EVENT_BATCH`` at a time; the number written."""
    written = 0
    batch: list[tuple] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= EVENT_BATCH:
            written += write_events(store_id, batch)
            if progress:
                progress(len(batch))
            batch = []
    if batch:
        written += write_events(store_id, batch)
        if progress:
            progress(len(batch))
    return written
