"""The Tasks page: every job of the store, of every kind, with status, progress and the failure reason.

Kinds come from the app registry (every concrete ``JobRun`` model) plus file imports; another
store's jobs never show, neither on the page nor through the status endpoint.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from analytics.evaluation.models import EvaluationRun, TuningJob
from analytics.models import ProfileRun
from shop_recs.dashboard.tasks_views import PAGE_SIZE, task_kinds
from shop_recs.imports.models import ImportJob, ImportKind, ImportStatus
from shop_recs.platform.jobs import JobStatus, job_models
from shop_recs.training.models import TrainingRun

pytestmark = pytest.mark.django_db

SECRET = "OTHER-STORE-SECRET"


def _url(name: str = "tasks", slug: str = "alpha") -> str:
    return reverse(f"dashboard:{name}", kwargs={"store_slug": slug})


@pytest.fixture
def rows(store, other_store, merchant, make_user):
    """One row of every kind in ``store`` (each status once at least), and secret rows in ``other_store``."""
    now = timezone.now()
    mine = {
        "training": TrainingRun.all_stores.create(
            store=store,
            algorithms=["popularity"],
            status=JobStatus.RUNNING,
            stage="fitting",
            progress=40,
            started_at=now,
            heartbeat_at=now,
            created_by=merchant,
        ),
        "profiles": ProfileRun.all_stores.create(store=store),
        "evaluation": EvaluationRun.all_stores.create(
            store=store,
            status=JobStatus.FAILED,
            error="ValueError: not enough events to split\n\nTraceback ...",
            started_at=now,
            finished_at=now,
        ),
        "tuning": TuningJob.all_stores.create(
            store=store, status=JobStatus.SUCCEEDED, progress=100, started_at=now, finished_at=now
        ),
        "import": ImportJob.all_stores.create(
            store=store,
            kind=ImportKind.EVENTS,
            file_name="orders.csv",
            status=ImportStatus.FAILED,
            message="line 3: unknown product sku Z9",
            finished_at=now,
        ),
    }
    intruder = make_user("intruder", other_store)
    for model in job_models():
        extra = {"algorithms": ["popularity"]} if model is TrainingRun else {}
        model.all_stores.create(
            store=other_store, status=JobStatus.FAILED, stage=SECRET, error=SECRET, created_by=intruder, **extra
        )
    ImportJob.all_stores.create(
        store=other_store,
        kind=ImportKind.CATALOG,
        file_name=f"{SECRET}.csv",
        status=ImportStatus.FAILED,
        message=SECRET,
        created_by=intruder,
    )
    return mine


def _task_rows(html: str) -> list[str]:
    return [part.split('"', 1)[0] for part in html.split('data-task="')[1:]]


def test_every_kind_shows_with_its_status_progress_and_reason(client, merchant, rows):
    client.force_login(merchant)
    resp = client.get(_url())
    assert resp.status_code == 200
    html = resp.content.decode()
    expected = {f"{type(r)._meta.label_lower}:{r.pk}" for r in rows.values()}
    assert set(_task_rows(html)) == expected
    # Every job model the app registry knows is a kind (the page lists nothing by hand) ...
    assert {k.model for k in task_kinds()} == {*job_models(), ImportJob}
    for label in ("Training", "Profiles and segments", "Evaluation", "Tuning", "Import"):
        assert f"<td>{label}</td>" in html
    # ... with each state: running with its progress and stage, queued, done, failed with the reason.
    assert 'value="40"' in html and "fitting" in html and "Queued" in html and "Succeeded" in html
    assert "ValueError: not enough events to split" in html and "line 3: unknown product sku Z9" in html
    assert "merchant" in html


def test_another_stores_jobs_never_show(client, merchant, rows):
    client.force_login(merchant)
    for query in ("", "?status=failed", "?kind=imports.importjob", "?kind=training.trainingrun&status=failed"):
        html = client.get(_url() + query).content.decode()
        assert SECRET not in html and "intruder" not in html, query
    assert len(_task_rows(client.get(_url()).content.decode())) == len(rows)


def test_filters_by_kind_and_status(client, merchant, rows):
    client.force_login(merchant)
    only_training = _task_rows(client.get(_url() + "?kind=training.trainingrun").content.decode())
    assert only_training == [f"training.trainingrun:{rows['training'].pk}"]
    failed = set(_task_rows(client.get(_url() + "?status=failed").content.decode()))
    assert failed == {f"evaluation.evaluationrun:{rows['evaluation'].pk}", f"imports.importjob:{rows['import'].pk}"}
    queued = _task_rows(client.get(_url() + "?status=queued").content.decode())
    assert queued == [f"analytics.profilerun:{rows['profiles'].pk}"]
    bad = client.get(_url() + "?kind=nope.model&status=sleeping")
    assert bad.status_code == 400
    assert "Unknown kind" in bad.content.decode() and "Unknown status" in bad.content.decode()


def test_paginated_newest_first(client, merchant, store):
    runs = [ProfileRun.all_stores.create(store=store) for _ in range(PAGE_SIZE + 3)]
    client.force_login(merchant)
    first = _task_rows(client.get(_url()).content.decode())
    second = _task_rows(client.get(_url() + "?page=2").content.decode())
    assert len(first) == PAGE_SIZE and len(second) == 3
    assert first[0] == f"analytics.profilerun:{runs[-1].pk}" and second[-1] == f"analytics.profilerun:{runs[0].pk}"


def test_status_endpoint_returns_live_progress_of_own_rows_only(client, analyst, rows, other_store):
    client.force_login(analyst)  # analysts may watch every job
    other = TrainingRun.all_stores.get(store=other_store)
    mine = f"training.trainingrun:{rows['training'].pk}"
    failed_import = f"imports.importjob:{rows['import'].pk}"
    resp = client.get(_url("task_status"), {"key": [mine, failed_import, f"training.trainingrun:{other.pk}"]})
    assert resp.status_code == 200
    tasks = resp.json()["tasks"]
    if other.pk != rows["training"].pk:
        assert set(tasks) == {mine, failed_import}
    assert tasks[mine]["status"] == "running" and tasks[mine]["progress"] == 40 and not tasks[mine]["finished"]
    assert tasks[failed_import]["finished"] and tasks[failed_import]["error"] == "line 3: unknown product sku Z9"
    assert SECRET not in resp.content.decode()
    TrainingRun.all_stores.filter(pk=rows["training"].pk).update(progress=75, stage="evaluating")
    assert client.get(_url("task_status"), {"key": mine}).json()["tasks"][mine]["progress"] == 75
    assert client.get(_url("task_status"), {"key": "bogus"}).status_code == 400


def test_analyst_sees_the_page_and_the_nav_links_it(client, analyst, rows):
    client.force_login(analyst)
    assert client.get(_url()).status_code == 200
    assert (
        f'href="{_url()}"' in client.get(reverse("dashboard:overview", kwargs={"store_slug": "alpha"})).content.decode()
    )


def test_non_member_gets_404(client, rows, make_user):
    client.force_login(make_user("stranger"))
    assert client.get(_url()).status_code == 404
    assert client.get(_url("task_status"), {"key": "training.trainingrun:1"}).status_code == 404


def test_page_is_translated(client, merchant, rows):
    client.force_login(merchant)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    html = client.get(_url()).content.decode()
    assert "<title>任务" in html or ">任务<" in html
    assert "<td>训练</td>" in html and "<td>调参</td>" in html and "排队中" in html
    assert "5 个任务" in html
