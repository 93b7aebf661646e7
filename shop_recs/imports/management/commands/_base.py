"""Shared plumbing of the import commands: store lookup, a tqdm progress bar, the printed report."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from shop_recs.imports.models import ImportJob, ImportStatus
from shop_recs.stores.models import Store


class ImportCommand(BaseCommand):
    """``manage.py import_x --store SLUG FILE``: runs one importer service and prints its report.

    A subclass sets ``importer`` (as ``staticmethod(import_x)``), ``help`` and ``unit``."""

    importer: Callable[..., ImportJob]
    unit = "rows"
    file_required = True
    #: Used when ``file_required`` is False and no file is given.
    default_file: Path | None = None

    def add_arguments(self, parser) -> None:
        parser.add_argument("--store", required=True, help="slug of the store to import into")
        parser.add_argument("file", nargs=None if self.file_required else "?", help="the file to import")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, **options) -> None:
        self.import_file(options)

    def import_file(self, options: dict) -> ImportJob:
        """Run ``importer`` on the command line's store and file; print the report."""
        store = self.get_store(options["store"])
        raw = options["file"] or (str(self.default_file) if self.default_file is not None else None)
        return self.run_import(self.importer, store, self.resolve_file(raw), quiet=options["no_progress"])

    def get_store(self, slug: str) -> Store:
        try:
            return Store.objects.get(slug=slug)
        except Store.DoesNotExist:
            raise CommandError(f"No store with slug {slug!r}")

    def resolve_file(self, raw: str | None) -> Path:
        path = Path(raw).expanduser()
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        return path

    def run_import(self, importer: Callable[..., ImportJob], store: Store, path: Path, *, quiet: bool) -> ImportJob:
        started = time.perf_counter()
        bar = tqdm(desc=f"{path.name} -> {store.slug}", unit=f" {self.unit}", disable=quiet, mininterval=0.5)
        try:
            job = importer(store, path, progress=bar.update)
        finally:
            bar.close()
        self.print_report(job, time.perf_counter() - started)
        if job.status == ImportStatus.FAILED:
            raise CommandError(f"import #{job.pk} failed; nothing was written.")
        return job

    def print_report(self, job: ImportJob, seconds: float) -> None:
        out = self.stdout
        status_style = {
            ImportStatus.SUCCEEDED: self.style.SUCCESS,
            ImportStatus.DUPLICATE: self.style.WARNING,
            ImportStatus.FAILED: self.style.ERROR,
        }.get(job.status, str)
        out.write(status_style(f"Import #{job.pk} ({job.get_kind_display()}, {job.file_name}): {job.status}"))
        if job.message:
            out.write(f"  {job.message}")
        out.write(f"  rows read:     {job.rows_read:>9,}")
        if job.status == ImportStatus.SUCCEEDED:
            out.write(f"  rows imported: {job.rows_imported:>9,}")
            for reason, count in job.skipped.items():
                out.write(f"  skipped ({reason}): {count:,}")
            for key, value in job.report.items():
                if key in ("outcomes", "outcome_help"):
                    continue
                out.write(f"  {key}: {value}")
        for err in job.errors[:50]:
            out.write(self.style.ERROR(f"  line {err['line']}: {err['message']}"))
        if job.error_count > 50:
            out.write(self.style.ERROR(f"  ... {job.error_count - 50} more error(s)"))
        out.write(f"  time: {seconds:.1f} s")
