"""Dashboard uploads are stored first and imported by a job with progress (issue 12, §7).

Today a 49 MiB events file is imported inside the upload request (29 s), two at once hit the
gunicorn timeout, and the import row stays "running" forever. Now the request stores the file and
returns; the import runs in the background job pool, writes its stage and row counts to the row,
which the page polls; the stale sweep fails a dead import with a reason.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models.signals import post_save
from django.urls import reverse
from django.utils import timezone

from shop_recs.activity.models import Event
from shop_recs.catalog.models import Product
from shop_recs.imports import uploads
from shop_recs.imports.models import ImportJob, ImportKind, ImportStatus
from shop_recs.platform import executor, jobs
from shop_recs.stores.scoping import store_scope
from shop_recs.training.tasks import enqueue_due_trainings

GUARD = 60  # seconds: only a guard against a hung thread, never a measured duration
CATALOG = b"sku,title,price\nA1,Alpha,1.50\nB2,Beta,2.00\n"
EVENTS = b"customer,type,sku,timestamp\nc1,view,A1,2024-05-01T10:00:00Z\nc1,purchase,A1,2024-05-01T10:05:00Z\n"


def _url(store, name="imports:index", **kwargs):
    return reverse(name, kwargs={"store_slug": store.slug, **kwargs})


def _upload(client, store, kind, name, content, **kwargs):
    return client.post(_url(store), {"kind": kind, "file": SimpleUploadedFile(name, content)}, **kwargs)


@pytest.fixture
def var_dir(settings, tmp_path) -> Path:
    settings.VAR_DIR = tmp_path / "var"
    return settings.VAR_DIR


@pytest.fixture
def pool(settings, var_dir):
    """The web process's pool, as a real server's first request starts it, and stopped afterwards."""
    settings.JOB_EXECUTOR_THREADS = 2
    started = jobs.start_background_jobs()
    assert started is not None
    yield started
    executor.stop(wait=True)


@pytest.mark.django_db(transaction=True)
def test_upload_returns_before_the_import_then_shows_progress_and_the_report(client, store, merchant, pool, var_dir):
    response_returned, job_waiting, release = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, object] = {}

    def hold_the_import(sender, instance, update_fields=None, **kwargs):
        # The job saves its "importing" stage once it has counted the rows, just before it imports.
        if update_fields and set(update_fields) == {"stage"} and instance.stage == "importing":
            seen["background"] = threading.current_thread() is not threading.main_thread()
            if seen["background"]:
                seen["response_first"] = response_returned.wait(GUARD)
                job_waiting.set()
                release.wait(GUARD)

    post_save.connect(hold_the_import, sender=ImportJob, dispatch_uid="test-hold-the-import")
    try:
        client.force_login(merchant)
        response = _upload(client, store, "catalog", "products.csv", CATALOG)
        response_returned.set()
        assert response.status_code == 302
        assert seen.get("background", True), "the import ran inside the request"
        assert job_waiting.wait(GUARD), "the import job never reached its importing stage"
        assert seen == {"background": True, "response_first": True}

        job = ImportJob.all_stores.get(store=store)
        assert response["Location"] == _url(store, "imports:detail", job_id=job.pk)
        assert job.status == ImportStatus.RUNNING and job.stage == "importing" and job.rows_total == 2
        assert job.worker == jobs.worker_identity() and job.stored_file
        assert (var_dir / job.stored_file).read_bytes() == CATALOG
        page = client.get(response["Location"]).content.decode()
        status_url = _url(store, "imports:status", job_id=job.pk)
        assert status_url in page and 'id="job-progress"' in page
        polled = client.get(status_url).json()
        assert polled["status"] == "running" and polled["finished"] is False
        assert polled["rows_total"] == 2 and "of 2 rows" in polled["stage"]
        with store_scope(store):
            assert Product.objects.count() == 0
        tasks = client.get(reverse("dashboard:tasks", kwargs={"store_slug": store.slug})).content.decode()
        assert "products.csv" in tasks or f"imports.importjob:{job.pk}" in tasks
    finally:
        release.set()
        post_save.disconnect(sender=ImportJob, dispatch_uid="test-hold-the-import")
    assert pool.wait(GUARD)

    polled = client.get(status_url).json()
    assert polled["status"] == "succeeded" and polled["finished"] is True and polled["progress"] == 100
    assert polled["rows_imported"] == 2 and polled["rows_done"] == 2
    job.refresh_from_db()
    assert job.report["products_created"] == 2 and job.stored_file == ""
    assert not any((var_dir / uploads.UPLOAD_DIR).rglob("*.csv")), "the imported file was kept"
    with store_scope(store):
        assert Product.objects.count() == 2
    page = client.get(_url(store, "imports:detail", job_id=job.pk)).content.decode()
    # The report's keys are named on the page (shop_recs.imports.messages): "products_created" reads "Products created".
    assert "Products created" in page and 'id="job-progress"' not in page


@pytest.mark.django_db
def test_a_failed_import_keeps_its_file_for_a_while_and_reports_lines(client, store, merchant, var_dir, settings):
    client.force_login(merchant)
    settings.IMPORT_UPLOAD_MAX_MB = 1  # the size limit still holds, with its message, and stores nothing
    response = _upload(client, store, "events", "big.csv", EVENTS + b"x" * (1024 * 1024))
    assert response.status_code == 200 and "larger than 1 MB" in response.content.decode()
    assert not ImportJob.all_stores.exists() and not (var_dir / uploads.UPLOAD_DIR).exists()

    bad = b"sku,title,price\nA1,Alpha,1.50\nB2,Beta,cheap\n"
    response = _upload(client, store, "catalog", "bad.csv", bad, follow=True)
    assert "cheap" in response.content.decode()
    job = ImportJob.all_stores.get(store=store)
    assert job.status == ImportStatus.FAILED and job.errors[0]["line"] == 3 and job.rows_total == 2
    kept = var_dir / job.stored_file
    assert kept.read_bytes() == bad  # kept: the merchant or an operator can look at it

    assert uploads.prune_kept_files() == 0  # still within KEEP_FAILED_DAYS
    later = timezone.now() + timedelta(days=uploads.KEEP_FAILED_DAYS + 1)
    assert uploads.prune_kept_files(now=later) == 1
    assert not kept.exists()
    job.refresh_from_db()
    assert job.stored_file == "" and job.status == ImportStatus.FAILED


@pytest.mark.django_db
def test_a_dead_import_job_is_failed_by_the_stale_sweep(store, settings):
    settings.JOB_STALE_SECONDS = 60
    dead = ImportJob.all_stores.create(
        store=store,
        kind=ImportKind.EVENTS,
        file_name="events.csv",
        status=ImportStatus.RUNNING,
        heartbeat_at=timezone.now() - timedelta(minutes=5),
    )
    busy = ImportJob.all_stores.create(
        store=store, kind=ImportKind.EVENTS, file_name="b.csv", status=ImportStatus.RUNNING, heartbeat_at=timezone.now()
    )
    enqueue_due_trainings.run()  # the beat tick's housekeeping
    dead.refresh_from_db()
    assert dead.status == ImportStatus.FAILED and dead.finished_at is not None
    assert "stopped reporting progress" in dead.message and "nothing was imported" in dead.error
    busy.refresh_from_db()
    assert busy.status == ImportStatus.RUNNING
    # An embedded web process that stopped while holding the import: failed when the next one starts.
    jobs._fail_orphan(jobs.job_key(ImportJob, busy.pk))
    busy.refresh_from_db()
    assert busy.status == ImportStatus.FAILED and "web process running this job stopped" in busy.message


@pytest.mark.django_db
def test_a_redelivered_import_takes_over_from_a_dead_worker(store, make_product, var_dir):
    make_product(store, "A1")
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    stored = var_dir / uploads.UPLOAD_DIR / "e.csv"
    stored.parent.mkdir(parents=True)
    stored.write_bytes(EVENTS)
    job = ImportJob.all_stores.create(
        store=store,
        kind=ImportKind.EVENTS,
        file_name="events.csv",
        status=ImportStatus.RUNNING,
        stage="importing",
        heartbeat_at=timezone.now(),  # fresh: only the dead pid tells the worker is gone
        worker=f"{socket.gethostname()}:{int(proc.stdout)}",
        stored_file=str(stored.relative_to(var_dir)),
    )
    done = uploads.run_import_job(job.pk)
    assert done.status == ImportStatus.SUCCEEDED and done.rows_imported == 2
    assert done.worker == jobs.worker_identity() and not stored.exists()
    with store_scope(store):
        assert Event.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_progress_is_published_while_the_import_transaction_is_open(store, monkeypatch):
    """PostgreSQL: the rows done reach the polling page while the import's one transaction is open."""
    from django.db import transaction

    from tests.conftest import require_postgres

    require_postgres()
    monkeypatch.setattr(uploads, "PROGRESS_SECONDS", 0.01)
    job = ImportJob.all_stores.create(
        store=store, kind=ImportKind.EVENTS, file_name="e.csv", status=ImportStatus.RUNNING, rows_total=200
    )
    reporter = uploads._Reporter.start_for(job)
    try:
        with transaction.atomic():  # what the importer holds open until its last row
            Product.all_stores.create(store=store, sku="uncommitted", title="Written, not committed")
            reporter.add(50)
            # Another connection (this thread's is inside the transaction) sees the rows done.
            seen = _wait_for(job.pk, rows_read=50)
        assert seen["progress"] == 25 and seen["heartbeat_at"] is not None
    finally:
        reporter.stop()


def _read_committed(pk: int) -> dict:
    result: dict = {}

    def read() -> None:
        from django.db import connection

        try:
            result.update(ImportJob.all_stores.filter(pk=pk).values("rows_read", "progress", "heartbeat_at")[0])
        finally:
            connection.close()

    thread = threading.Thread(target=read)
    thread.start()
    thread.join(GUARD)
    return result


def _wait_for(pk: int, rows_read: int) -> dict:
    """The row as another connection reads it, once it shows ``rows_read`` (polled; GUARD bounds it)."""
    pause = threading.Event()
    for _attempt in range(int(GUARD / 0.01)):
        row = _read_committed(pk)
        if row.get("rows_read") == rows_read:
            return row
        pause.wait(0.01)
    raise AssertionError("the progress never reached another connection")
