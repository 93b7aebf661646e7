"""Request ids: accepted when sane, made when not, echoed, on every log line (plain or JSON), and
carried into the jobs a request starts (Celery message header, embedded pool)."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
import threading

import pytest
from celery import signals

from shop_recs.celery import app
from shop_recs.platform import executor, requestid
from shop_recs.platform.requestid import TASK_HEADER, JsonFormatter, RequestIdFilter
from tests.conftest import ROOT

GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def json_log() -> io.StringIO:
    """Root records as the production handler writes them with LOG_FORMAT=json (same filter and formatter)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


# --- the id of a request ------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_request_without_an_id_gets_a_new_one_in_the_response(client):
    first, second = client.get("/healthz"), client.get("/healthz")
    assert GENERATED.fullmatch(first["X-Request-ID"])
    assert GENERATED.fullmatch(second["X-Request-ID"])
    assert first["X-Request-ID"] != second["X-Request-ID"]


@pytest.mark.django_db
@pytest.mark.parametrize("incoming", ["req-42", "a" * 64, "2f1c.edge_7-B", "01HZX3J6K9Q"])
def test_a_sane_incoming_id_is_kept(client, incoming):
    assert client.get("/healthz", HTTP_X_REQUEST_ID=incoming)["X-Request-ID"] == incoming


@pytest.mark.django_db
@pytest.mark.parametrize(
    "incoming",
    ["a" * 65, "", "has space", 'quote"', "line\nbreak", "semi;colon", "ünïcode", "../../etc", "<script>"],
)
def test_an_insane_incoming_id_is_replaced(client, incoming):
    echoed = client.get("/healthz", HTTP_X_REQUEST_ID=incoming)["X-Request-ID"]
    assert GENERATED.fullmatch(echoed), echoed


@pytest.mark.django_db
def test_an_api_error_body_echoes_the_sane_id_never_a_forged_one(api_client):
    sane = api_client.get("/api/v1/popular", {"n": "0"}, HTTP_X_REQUEST_ID="req-body-1")
    assert sane.status_code == 400
    assert sane.json()["error"]["request_id"] == sane["X-Request-ID"] == "req-body-1"
    replaced = api_client.get("/api/v1/popular", {"n": "0"}, HTTP_X_REQUEST_ID="x" * 300)
    assert replaced.json()["error"]["request_id"] == replaced["X-Request-ID"]
    assert GENERATED.fullmatch(replaced["X-Request-ID"])
    # Without an incoming id the body keeps its documented shape (docs/api.md); the header has the id.
    plain = api_client.get("/api/v1/popular", {"n": "0"})
    assert "request_id" not in plain.json()["error"]
    assert GENERATED.fullmatch(plain["X-Request-ID"])


# --- log lines ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_every_log_line_of_a_request_carries_its_id(api_client, monkeypatch, json_log):
    from shop_recs.serving import api_views

    def explode(*args, **kwargs):
        logging.getLogger("shop_recs.serving").warning("about to fail")
        raise RuntimeError("boom")

    monkeypatch.setattr(api_views, "catalog_snapshot", explode)
    response = api_client.get("/api/v1/popular", HTTP_X_REQUEST_ID="req-log-1")
    assert response.status_code == 500
    logging.getLogger("shop_recs.test").info("after the request")

    records = lines(json_log)
    during = [r for r in records if r["logger"] in {"shop_recs.serving", "shop_recs.api"}]
    assert [r["message"] for r in during] == ["about to fail", "unhandled error on GET /api/v1/popular"]
    assert {r["request_id"] for r in during} == {"req-log-1"}
    error = during[1]
    assert error["level"] == "ERROR" and error["exc_type"] == "RuntimeError" and "boom" in error["exc_info"]
    after = [r for r in records if r["logger"] == "shop_recs.test"]
    assert after[0]["request_id"] == "-"  # the id does not outlive its request


def test_the_json_formatter_writes_one_object_per_line_with_extras():
    record = logging.LogRecord("shop_recs.x", logging.WARNING, __file__, 1, "hello %s\nworld", ("you",), None)
    record.store_id = 7
    record.payload = {1: object()}  # not JSON: written as its str(), never dropped
    with requestid.bound("req-fmt"):
        RequestIdFilter().filter(record)
    out = JsonFormatter().format(record)
    assert "\n" not in out
    entry = json.loads(out)
    assert entry["message"] == "hello you\nworld"
    assert entry["level"] == "WARNING" and entry["logger"] == "shop_recs.x"
    assert entry["request_id"] == "req-fmt"
    assert entry["store_id"] == 7 and entry["payload"]["1"].startswith("<object object")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", entry["time"])


def _log_from_a_fresh_process(**env: str) -> str:
    code = (
        "import django, logging; django.setup()\n"
        "from shop_recs.platform import requestid\n"
        "logging.getLogger('shop_recs.probe').warning('outside')\n"
        "with requestid.bound('req-sub-1'):\n"
        "    logging.getLogger('shop_recs.probe').warning('inside')\n"
    )
    full_env = {**os.environ, "DJANGO_SETTINGS_MODULE": "shop_recs.settings", **env}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr


def test_log_format_json_makes_the_settings_write_json_lines():
    probe = [json.loads(line) for line in _log_from_a_fresh_process(LOG_FORMAT="json").splitlines() if "probe" in line]
    assert [(r["message"], r["request_id"]) for r in probe] == [("outside", "-"), ("inside", "req-sub-1")]


def test_plain_logs_show_the_request_id_too():
    probe = [line for line in _log_from_a_fresh_process(LOG_FORMAT="plain").splitlines() if "probe" in line]
    assert len(probe) == 2
    assert "[-] outside" in probe[0] and "[req-sub-1] inside" in probe[1]


# --- jobs: Celery tasks and the embedded pool --------------------------------------------------


@app.task(name="tests.platform.request_id_probe")
def request_id_probe() -> str | None:
    logging.getLogger("shop_recs.probe").info("in the task")
    return requestid.current()


def test_a_task_sent_during_a_request_carries_its_id_in_the_message():
    """What ``apply_async`` does on a real broker: ``before_task_publish`` with the message headers."""
    headers: dict = {"id": "t-1", "task": "x"}
    with requestid.bound("req-send-1"):
        signals.before_task_publish.send(sender="x", body=((), {}, {}), headers=headers, exchange="", routing_key="q")
    assert headers[TASK_HEADER] == "req-send-1"
    outside: dict = {}
    signals.before_task_publish.send(sender="x", body=((), {}, {}), headers=outside, exchange="", routing_key="q")
    assert TASK_HEADER not in outside  # nothing to carry outside a request


def test_a_worker_binds_the_messages_id_while_the_task_runs(json_log):
    result = request_id_probe.apply(headers={TASK_HEADER: "req-task-1"})
    assert result.get() == "req-task-1"
    assert requestid.current() is None  # unbound after the task
    logged = [r for r in lines(json_log) if r["message"] == "in the task"]
    assert [r["request_id"] for r in logged] == ["req-task-1"]


def test_protocol_2_headers_arrive_as_request_fields():
    """On a worker, custom message headers become fields of ``task.request`` (not under ``headers``)."""

    class Request:
        shop_recs_request_id = "req-worker-9"
        headers = None

    class Task:
        request = Request()

    assert requestid.task_request_id(Task()) == "req-worker-9"
    Request.shop_recs_request_id = "bad id; with spaces"
    assert requestid.task_request_id(Task()) is None  # a forged header is not trusted either


def test_an_eager_task_inside_a_request_keeps_the_callers_id(settings):
    with requestid.bound("req-eager-1"):
        assert request_id_probe.delay().get() == "req-eager-1"
        assert requestid.current() == "req-eager-1"  # the task's end does not unbind the caller's id


def test_a_job_of_the_embedded_pool_runs_under_the_id_of_the_request_that_started_it(tmp_path):
    pool = executor.BackgroundExecutor(1, tmp_path)
    seen: dict[str, object] = {}
    ran = threading.Event()

    def job() -> None:
        seen["id"], seen["thread"] = requestid.current(), threading.current_thread().name
        ran.set()

    try:
        executor.begin_request()
        with requestid.bound("req-pool-1"):
            executor.after_response(lambda: pool.submit("test:1", job))
        executor.end_request()  # the response was sent: the request's id is no longer current here
        assert ran.wait(30)
    finally:
        executor.end_request()
        pool.shutdown(wait=True)
    assert seen["id"] == "req-pool-1"
    assert str(seen["thread"]).startswith("shop-recs-job")


# --- end to end: a real worker on the Redis broker ---------------------------------------------

from tests.services.conftest import celery_worker  # noqa: E402, F401 - the real-worker fixture (PostgreSQL + Redis)


@pytest.fixture
def json_worker(monkeypatch):
    """Workers started after this write JSON logs (they inherit the environment)."""
    monkeypatch.setenv("LOG_FORMAT", "json")


@pytest.mark.services
def test_a_real_workers_log_lines_for_a_task_carry_the_sending_requests_id(json_worker, celery_worker):  # noqa: F811
    from shop_recs.platform.tasks import sweep_stale_jobs_task

    with requestid.bound("req-e2e-7"):
        sweep_stale_jobs_task.delay()

    found: list[dict] = []
    done = threading.Event()

    def read() -> None:
        # The worker's combined stdout/stderr, line by line, until its line for this task arrives.
        for line in celery_worker.stdout:
            if line.startswith("{"):
                entry = json.loads(line)
                if "sweep_stale_jobs_task" in entry["message"] and "succeeded" in entry["message"]:
                    found.append(entry)
                    done.set()
                    return

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(90), "the worker logged no JSON 'succeeded' line for the task"
    assert found[0]["request_id"] == "req-e2e-7"
    assert found[0]["logger"].startswith("celery")
