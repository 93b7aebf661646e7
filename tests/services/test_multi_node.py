"""Several nodes on one machine, sharing only PostgreSQL, Redis and an S3 bucket (docs/operations.md,
"Queues" and "Model artifacts"): no shared artifact directory.

Started here: two gunicorn instances on two ports (each one worker process, with its own in-process
caches), a Celery worker on the heavy queue and one on the default queue, celery beat, all on the
pytest-django test database, the shared Redis under a private queue prefix, and the local moto S3
server (``ARTIFACT_STORAGE=s3``). Every process has its own empty ``MODEL_DIR`` and var directory.

Checked: beat's scheduled-retraining tick runs on the default worker, the training it starts runs on
the heavy worker, the artifact is in the bucket with its checksum, and both web instances serve that
version from their own download; an event POSTed to instance 1 changes the next recommendation
served by instance 2; an API key revoked on instance 1's dashboard is refused by instance 1 at once
and by instance 2 within ``API_KEY_CACHE_SECONDS`` (polled up to that window plus a margin).
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.db import connection
from django.utils import timezone

from shop_recs.activity.models import Event
from shop_recs.stores.models import ApiKey
from shop_recs.stores.scoping import unscoped
from shop_recs.training.models import ModelVersion, TrainingRun, TrainingSchedule
from tests.conftest import ROOT, require_postgres, require_redis

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
API = "/api/v1"
#: The documented window (settings.API_KEY_CACHE_SECONDS default) and the slack allowed on top of it.
KEY_WINDOW_SECONDS = 5.0
KEY_MARGIN_SECONDS = 3.0
PASSWORD = "pw-multi-node-123!"  # noqa: S105 - a test user's password


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    """One child process (web, worker or beat) with its own directory and log file."""

    def __init__(self, name: str, root: Path, argv: list[str], env: dict[str, str], port: int | None = None) -> None:
        self.name, self.port = name, port
        self.dir = root / name
        self.dir.mkdir(parents=True)
        self.model_dir = self.dir / "models"  # created by the process itself when it needs it
        self.log = root / f"{name}.log"
        env = {**env, "SHOP_RECS_VAR_DIR": str(self.dir), "SHOP_RECS_MODEL_DIR": str(self.model_dir)}
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=open(self.log, "w"),  # noqa: SIM115 - the child owns the handle
            stderr=subprocess.STDOUT,
        )

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self, tail: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()

    def wait_stopped(self) -> None:
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def _celery(*args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "shop_recs", *args]


def _gunicorn(port: int) -> list[str]:
    # One worker process per instance, so "instance" and "process" (and its caches) are the same thing.
    return [
        *(sys.executable, "-m", "gunicorn", "shop_recs.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1"),
        *("--timeout", "60", "--graceful-timeout", "5"),
    ]


@pytest.fixture
def cluster(transactional_db, tmp_path, s3_bucket, multi_shop):
    """Start the five processes once the shop exists; yield them by name; stop them."""
    require_postgres()
    broker = require_redis()
    prefix = f"mn-{uuid.uuid4().hex[:8]}-"
    db = settings.DATABASES["default"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOP_RECS_TEST_")}
    env.update(
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        REDIS_URL=broker,
        CELERY_BROKER_URL=broker,
        CELERY_RESULT_BACKEND=broker,
        CELERY_QUEUE=f"{prefix}default",
        CELERY_HEAVY_QUEUE=f"{prefix}heavy",
        CELERY_TASK_ALWAYS_EAGER="0",
        DEBUG="0",
        SECRET_KEY="multi-node-" + uuid.uuid4().hex,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        # Plain http on localhost: the dashboard's cookies must not be Secure-only.
        SESSION_COOKIE_SECURE="0",
        CSRF_COOKIE_SECURE="0",
        OPENBLAS_NUM_THREADS="1",
        SERVING_LOG_BUFFER_ROWS="0",
        API_KEY_CACHE_SECONDS=str(KEY_WINDOW_SECONDS),
        SERVING_ACTIVE_VERSION_TTL="1",
        # Scheduled retraining ticks every second; the other periodic jobs keep their long defaults.
        TRAINING_SCHEDULE_TICK_SECONDS="1",
        **s3_bucket.env(),
    )
    root = tmp_path / "nodes"
    nodes: dict[str, Node] = {}
    worker = ("worker", "--pool=solo", "--concurrency=1", "--loglevel=INFO")
    quiet = ("--without-gossip", "--without-mingle", "--without-heartbeat")
    try:
        nodes["web1"] = Node("web1", root, _gunicorn(p1 := _free_port()), env, port=p1)
        nodes["web2"] = Node("web2", root, _gunicorn(p2 := _free_port()), env, port=p2)
        nodes["heavy"] = Node(
            "heavy", root, _celery(*worker, "-Q", f"{prefix}heavy", "-n", f"{prefix}heavy@%h", *quiet), env
        )
        nodes["default"] = Node(
            "default", root, _celery(*worker, "-Q", f"{prefix}default", "-n", f"{prefix}default@%h", *quiet), env
        )
        nodes["beat"] = Node(
            "beat",
            root,
            _celery("beat", "--loglevel=INFO", "--schedule", str(root / "beat-schedule"), "--max-interval", "1"),
            env,
        )
        for web in (nodes["web1"], nodes["web2"]):
            _wait(lambda web=web: _answers(web), 90, nodes, f"{web.name} did not start")
        yield nodes
    finally:
        for node in nodes.values():  # SIGTERM to all first: they shut down in parallel
            node.stop()
        for node in nodes.values():
            node.wait_stopped()
        connection.close()


def _answers(web: Node) -> bool:
    try:
        requests.get(web.base + "/healthz", timeout=5)
        return True
    except (requests.ConnectionError, requests.Timeout):
        return False


def _wait(predicate, timeout: float, nodes: dict[str, Node], what: str, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (AssertionError, requests.RequestException) as exc:  # e.g. a 500 while a node starts
            value, last = None, f"{type(exc).__name__}: {exc}"
        if value:
            return value
        if any(n.proc.poll() is not None for n in nodes.values()):
            break
        time.sleep(interval)
    logs = "\n".join(f"--- {n.name} (exit {n.proc.poll()}) ---\n{n.output()}" for n in nodes.values())
    pytest.fail(f"{what} (timeout {timeout}s; last error: {last})\n{logs}")


@pytest.fixture
def multi_shop(transactional_db, make_store, make_product, make_customer, make_user):
    """12 customers x 8 products (mugs M*, shirts S*), a merchant, two API keys and a training
    schedule that is due now. Nothing is trained here: the cluster's heavy worker does it."""
    store = make_store("Multi Shop", slug="multi")
    titles = {"M": "Ceramic coffee mug model", "S": "Cotton shirt style"}
    products = {f"{k}{i}": make_product(store, f"{k}{i}", title=f"{titles[k]} {i}") for k in "MS" for i in range(4)}
    customers = [make_customer(store, f"C{i}") for i in range(12)]
    rows = []
    for c, customer in enumerate(customers):
        group = [f"M{i}" for i in range(4)] if c % 2 == 0 else [f"S{i}" for i in range(4)]
        group = group[c % 4 :] + group[: c % 4]
        for step, sku in enumerate(group[:3]):
            rows.append(
                Event(
                    store=store,
                    customer=customer,
                    product=products[sku],
                    event_type="purchase" if step == 0 else "view",
                    timestamp=T0 + timedelta(hours=c, minutes=step),
                    order_id=f"o{c}" if step == 0 else "",
                )
            )
    merchant = make_user("multi-merchant", store)
    merchant.set_password(PASSWORD)
    merchant.save()
    with unscoped():
        Event.objects.bulk_create(rows)
        TrainingSchedule.objects.create(
            store=store, enabled=True, interval_hours=24, algorithms=["item_knn"], next_due_at=timezone.now()
        )
    _, key = ApiKey.generate(store, "serving")
    doomed, doomed_raw = ApiKey.generate(store, "to revoke")
    return {"store": store, "key": key, "doomed": doomed, "doomed_raw": doomed_raw}


def _get(web: Node, path: str, key: str) -> requests.Response:
    return requests.get(web.base + API + path, headers={"Authorization": f"Bearer {key}"}, timeout=15)


def _recs(web: Node, key: str, customer: str = "C0") -> dict:
    r = _get(web, f"/recommendations/customer/{customer}?n=4", key)
    assert r.status_code == 200, (web.name, r.status_code, r.text[:500])
    return r.json()


def test_two_web_instances_two_queues_beat_and_s3_artifacts(cluster, multi_shop, s3_bucket):
    store, key = multi_shop["store"], multi_shop["key"]
    web1, web2, heavy = cluster["web1"], cluster["web2"], cluster["heavy"]

    # 1. Beat's tick (default queue) starts the scheduled run; the heavy worker trains and activates it.
    def active() -> ModelVersion | None:
        with unscoped():
            return ModelVersion.objects.filter(store=store, is_active=True).first()

    version = _wait(active, 100, cluster, "no model was trained and activated")
    with unscoped():
        run = TrainingRun.objects.get(pk=version.run_id)
        schedule = TrainingSchedule.objects.get(store=store)
    assert schedule.last_run_id == run.pk  # started by the scheduled-retraining tick, not by this test
    assert run.params["_worker"].endswith(f":{heavy.proc.pid}"), run.params["_worker"]  # solo pool: the worker itself
    received = "Task shop_recs.training.tasks.{}["  # a worker's log line for each task it receives
    assert received.format("train_model") in heavy.output(200_000)
    assert received.format("train_model") not in cluster["default"].output(200_000)
    assert received.format("enqueue_due_trainings") in cluster["default"].output(200_000)
    assert received.format("enqueue_due_trainings") not in heavy.output(200_000)

    # 2. The artifact is an object in the bucket with the recorded checksum; only the trainer has a file.
    body = s3_bucket.client().get_object(Bucket=s3_bucket.name, Key=s3_bucket.key(version.artifact_path))["Body"].read()
    assert hashlib.sha256(body).hexdigest() == version.checksum
    assert (heavy.model_dir / version.artifact_path).exists()
    assert (
        not (web1.model_dir / version.artifact_path).exists() and not (web2.model_dir / version.artifact_path).exists()
    )

    # 3. Both web instances serve that version, each from its own verified download.
    for web in (web1, web2):
        _wait(
            lambda web=web: _recs(web, key)["model_version"] == version.pk, 20, cluster, f"{web.name} never served it"
        )
        copy = web.model_dir / version.artifact_path
        assert hashlib.sha256(copy.read_bytes()).hexdigest() == version.checksum

    # 4. An event POSTed to instance 1 changes the very next recommendation served by instance 2.
    before = [item["sku"] for item in _recs(web2, key)["items"]]  # C0 likes mugs; instance 2 caches C0's activity
    assert before and all(sku.startswith("M") for sku in before[:1])
    now = timezone.now()
    for i, sku in enumerate(["S0", "S1", "S0", "S1"]):
        event = {"customer": "C0", "type": "view", "sku": sku, "timestamp": (now + timedelta(seconds=i)).isoformat()}
        r = requests.post(
            web1.base + API + "/events", json=event, headers={"Authorization": f"Bearer {key}"}, timeout=15
        )
        assert r.status_code in (200, 201, 202), r.text[:500]
    after = [item["sku"] for item in _recs(web2, key)["items"]]
    assert after != before, (before, after)
    assert {"S2", "S3"} & set(after), after  # the shirts next to the ones just viewed

    # 5. A key revoked through instance 1's dashboard: instance 1 refuses it at once, instance 2 within the window.
    doomed = multi_shop["doomed_raw"]
    for web in (web1, web2):  # both instances have the key cached as valid
        assert _get(web, "/popular?n=2", doomed).status_code == 200
    session = requests.Session()
    login = session.get(web1.base + "/accounts/login/", timeout=15)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text).group(1)
    r = session.post(
        web1.base + "/accounts/login/",
        data={"username": "multi-merchant", "password": PASSWORD, "csrfmiddlewaretoken": token},
        timeout=15,
        allow_redirects=False,
    )
    assert r.status_code == 302, r.text[:500]
    revoke = f"/s/{store.slug}/settings/keys/{multi_shop['doomed'].pk}/revoke/"
    r = session.post(
        web1.base + revoke,
        data={"csrfmiddlewaretoken": session.cookies["csrftoken"]},
        timeout=15,
        allow_redirects=False,
    )
    assert r.status_code == 302, r.text[:500]
    revoked_at = time.monotonic()
    assert _get(web1, "/popular?n=2", doomed).status_code in (401, 403)
    deadline = revoked_at + KEY_WINDOW_SECONDS + KEY_MARGIN_SECONDS
    status = 200
    while time.monotonic() < deadline:
        status = _get(web2, "/popular?n=2", doomed).status_code
        if status in (401, 403):
            break
        time.sleep(0.2)
    assert status in (401, 403), (
        f"instance 2 still accepted the revoked key after {KEY_WINDOW_SECONDS + KEY_MARGIN_SECONDS}s"
    )
    assert _get(web2, "/popular?n=2", key).status_code == 200  # the other key is untouched
    session.close()  # an idle keep-alive connection would hold up gunicorn's graceful stop
