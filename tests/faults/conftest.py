"""Fault-injection fixtures: real Celery worker processes that a test may start, kill and restart.

Unlike ``tests/services``' single ``celery_worker`` fixture, ``start_worker`` can be called several
times (a second worker after the first was killed) and takes extra environment variables (for
example ``SHOP_RECS_TEST_TRAINING_DELAY``). Worker output goes to a file, not a pipe, so a chatty
worker can never block on a full pipe; a failing ``wait_for`` prints it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from shop_recs.training import artifacts
from tests.conftest import ROOT, publishing_to, require_postgres, require_redis

# The serving fixtures (a small trained store, cleared in-process caches) are shared with tests/serving.
from tests.serving.conftest import _fresh_serving, add_events, shop  # noqa: F401


class Worker:
    """One ``celery worker --pool=solo`` process (the task runs in this very process, so SIGKILL hits it)."""

    def __init__(self, proc: subprocess.Popen, log: Path) -> None:
        self.proc = proc
        self.log = log

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self, tail: int = 6000) -> str:
        try:
            return self.log.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc.poll() is None


@pytest.fixture
def worker_var_dir(tmp_path, monkeypatch, settings):
    """This process and every worker (which inherits the environment) share one artifact directory."""
    monkeypatch.setenv("SHOP_RECS_VAR_DIR", str(tmp_path))
    settings.MODEL_DIR = tmp_path / "models"
    artifacts.clear_model_cache()
    yield tmp_path
    artifacts.clear_model_cache()


@pytest.fixture
def start_worker(transactional_db, tmp_path):
    """``start_worker(**env) -> Worker`` on a private queue of the real broker and the test database."""
    require_postgres()
    broker = require_redis()
    queue = f"faults-{uuid.uuid4().hex[:8]}"
    db = settings.DATABASES["default"]
    workers: list[Worker] = []

    def _start(**extra_env: str) -> Worker:
        env = dict(os.environ)
        env.update(
            DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            CELERY_BROKER_URL=broker,
            REDIS_URL=broker,
            CELERY_QUEUE=queue,
            CELERY_HEAVY_QUEUE=queue,
            CELERY_TASK_ALWAYS_EAGER="0",
            OPENBLAS_NUM_THREADS="1",
        )
        env.pop("SHOP_RECS_TEST_TRAINING_DELAY", None)
        env.update(extra_env)
        log = tmp_path / f"worker{len(workers) + 1}.log"
        proc = subprocess.Popen(
            [
                sys.executable,
                *("-m", "celery", "-A", "shop_recs", "worker", "--pool=solo", "--concurrency=1"),
                *("--loglevel=INFO", "-Q", queue, "--without-gossip", "--without-mingle", "--without-heartbeat"),
            ],
            cwd=ROOT,
            env=env,
            stdout=open(log, "w"),  # noqa: SIM115 - the child owns the handle
            stderr=subprocess.STDOUT,
        )
        worker = Worker(proc, log)
        workers.append(worker)
        return worker

    try:
        with publishing_to(queue, broker):
            yield _start
    finally:
        for worker in workers:
            if worker.alive():
                worker.proc.terminate()
        for worker in workers:
            try:
                worker.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.proc.kill()
                worker.proc.wait(timeout=10)
        connection.close()


def wait_until(predicate, timeout: float = 60.0, interval: float = 0.2, workers: tuple[Worker, ...] = ()):
    """Poll until ``predicate()`` is truthy; on timeout, fail with the workers' output."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    logs = "\n".join(f"--- worker {w.pid} ---\n{w.output()}" for w in workers)
    pytest.fail(f"condition not met within {timeout}s\n{logs}")


# --- a private PostgreSQL server, which a test may stop and start (never the shared one on 5432) ---


def free_port() -> int:
    """A local TCP port nobody listens on right now (bound to port 0, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bin_dir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<major>/bin`` that has ``initdb`` and ``pg_ctl`` (or ``PG_BIN_DIR``)."""
    explicit = os.environ.get("PG_BIN_DIR")
    candidates = [Path(explicit)] if explicit else []
    found = Path("/usr/lib/postgresql").glob("*/bin")
    candidates += sorted(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0, reverse=True)
    for path in candidates:
        if (path / "initdb").exists() and (path / "pg_ctl").exists():
            return path
    return None


class PrivatePostgres:
    """One PostgreSQL server in a temporary directory, trust auth, on its own port.

    PostgreSQL refuses to run as root: as root the binaries run as the ``postgres`` user, who then
    owns the directory. ``stop()`` is a fast shutdown (clients are disconnected, in-flight
    transactions roll back), like an operator's restart.
    """

    def __init__(self, bin_dir: Path, root: Path, port: int) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.data = root / "data"
        self.port = port
        self.log = root / "server.log"

    def _run(self, *args: str, timeout: float = 60) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *args], check=True, timeout=timeout, capture_output=True)

    def init(self) -> None:
        self._run(
            str(self.bin_dir / "initdb"),
            *("-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"),
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """``mode="immediate"`` is a crash: no checkpoint, the next start replays the WAL."""
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def url(self, dbname: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{dbname}"

    def connect(self, dbname: str = "postgres"):
        import psycopg

        return psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname=dbname, autocommit=True)


@pytest.fixture
def private_postgres():
    """A started :class:`PrivatePostgres` (skipped locally, failed under CI, without the binaries)."""
    import shutil
    import tempfile

    from tests.conftest import skip_or_fail

    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        skip_or_fail("this test needs the PostgreSQL server binaries (initdb, pg_ctl under /usr/lib/postgresql)")
    # Not pytest's tmp_path: its parents are private to this user, and the server may run as postgres.
    root = Path(tempfile.mkdtemp(prefix="shop-recs-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    server = PrivatePostgres(bin_dir, root, free_port())
    try:
        server.init()
        server.start()
        yield server
    finally:
        if server.running():
            try:
                server.stop()
            except (subprocess.SubprocessError, OSError):
                pass
        shutil.rmtree(root, ignore_errors=True)


# --- manage.py and gunicorn against a private PostgreSQL (test_postgres_down, test_durability) ---


def server_env(server: PrivatePostgres, dbname: str, *, keep_redis: bool = False, **extra: str) -> dict[str, str]:
    """The environment of a ``manage.py`` or gunicorn child using ``dbname`` on ``server``.

    ``DEBUG`` off and a fresh ``SECRET_KEY`` (production-like answers), Celery eager. Without Redis
    unless ``keep_redis``: a test of the database alone must not depend on the shared Redis.
    """
    env = dict(os.environ)
    dropped = ["SERVING_LOG_BUFFER_ROWS"]
    if not keep_redis:
        dropped += ["REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"]
    for name in dropped:
        env.pop(name, None)
    env.update(
        DATABASE_URL=server.url(dbname),
        DEBUG="0",
        SECRET_KEY="fault-test-" + uuid.uuid4().hex,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        CELERY_TASK_ALWAYS_EAGER="1",
        OPENBLAS_NUM_THREADS="1",
        DB_CONN_MAX_AGE="60",
    )
    env.update(extra)
    return env


def manage(env: dict[str, str], *args: str) -> str:
    """Run ``manage.py args`` in a child with ``env``; its stdout (the test fails with its output otherwise)."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"manage.py {args[0]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def child_pids(parent: int) -> list[int]:
    """The pids whose parent is ``parent`` (from ``/proc``: no psutil, and no ``task/*/children`` here)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ")".
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[1]) == parent:
            found.append(int(entry.name))
    return found


class Gunicorn:
    """A gunicorn master for ``shop_recs.wsgi`` on a local port, which a test may stop, start again
    (same port) and whose worker processes it may SIGKILL. Output is appended to ``log``."""

    def __init__(
        self, env: dict[str, str], log: Path, *args: str, port: int | None = None, app: str = "shop_recs.wsgi"
    ) -> None:
        self.env = env
        self.app = app
        self.log = log
        self.args = args  # e.g. ("-w", "2", "-k", "gthread", "--threads", "2")
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self, tail: int = 6000) -> str:
        try:
            return self.log.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def start(self, ready_path: str = "/healthz", timeout: float = 60) -> None:
        """Start the master and wait until ``ready_path`` answers (any HTTP status)."""
        import requests

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", self.app, "-b", f"127.0.0.1:{self.port}", *self.args],
            cwd=ROOT,
            env=self.env,
            stdout=open(self.log, "a"),  # noqa: SIM115 - the child owns the handle
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                requests.get(self.base + ready_path, timeout=5)
                return
            # A timeout too: the master listens before its workers have imported the app.
            except (requests.ConnectionError, requests.Timeout):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"gunicorn did not start:\n{self.output(4000)}")
                time.sleep(0.2)

    def worker_pids(self) -> list[int]:
        return child_pids(self.proc.pid) if self.proc is not None and self.proc.poll() is None else []

    def kill_worker(self, pid: int) -> bool:
        """SIGKILL one worker (a crash: no cleanup, in-flight requests lose their connection).
        False if it had already exited."""
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return False
        return True

    def stop(self) -> None:
        """SIGTERM: the master stops accepting, workers finish in-flight requests, then exit."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None
