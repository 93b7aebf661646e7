"""Embedded mode's background jobs: a bounded thread pool inside the web process.

Without a broker (the embedded default) Celery runs a task eagerly, in the caller; from a dashboard
request that froze the page for the whole job (10.5 s to train the demo store, 17.2 s for its
profiles). A web process therefore starts this pool on its first request (``jobs`` wires it to
``request_started``), and ``jobs.enqueue_on_commit`` hands the task body to it instead:

* **After the response.** A job submitted during a request starts once the response has been sent
  (``request_finished``), so the page returns at once and the job never competes with the request's
  own writes for the SQLite write lock nor for the GIL while the page renders.
* **Bounded.** ``JOB_EXECUTOR_THREADS`` jobs run at a time; the others wait their turn as "queued".
* **Restart-safe.** Each process keeps a small ledger file (``<VAR_DIR>/jobs/<pid>.json``) of the job
  rows it holds; a process that starts a pool finds the ledgers of dead processes and hands their
  rows back (:func:`start` returns them) so ``jobs`` fails them instead of leaving them "running".

Only web processes start the pool. Commands, shells and the test client keep Celery's eager
behaviour: a command that starts a job still sees it finished when the call returns.
This module knows nothing about job rows: keys are opaque strings (``"app_label.model:pk"``).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from pathlib import Path

from django.db import connections

from shop_recs.platform import requestid

logger = logging.getLogger(__name__)


class _Ledger:
    """The keys of the jobs this process holds (queued or running), in one small JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._keys: list[str] = []
        self._lock = threading.Lock()

    def add(self, key: str) -> None:
        with self._lock:
            self._keys.append(key)
            self._write()

    def discard(self, key: str) -> None:
        with self._lock:
            if key in self._keys:
                self._keys.remove(key)
            self._write()

    def _write(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.tmp")
            tmp.write_text(json.dumps(self._keys))
            tmp.replace(self.path)  # a crash mid-write never leaves a half-written ledger
        except OSError:
            # The job must still run: without its ledger a restart leaves the row to the stale sweep.
            logger.exception("could not write the job ledger %s", self.path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def orphaned_keys(state_dir: Path) -> list[str]:
    """Keys in the ledgers of processes that are gone; their files are removed as they are read."""
    keys: list[str] = []
    if not state_dir.is_dir():
        return keys
    for path in sorted(state_dir.glob("*.json")):
        if not path.stem.isdigit() or int(path.stem) == os.getpid() or _pid_alive(int(path.stem)):
            continue
        try:
            keys.extend(str(k) for k in json.loads(path.read_text() or "[]"))
        except (OSError, ValueError):
            logger.warning("unreadable job ledger %s; ignoring it", path)
        path.unlink(missing_ok=True)
    return keys


class BackgroundExecutor:
    """A ``ThreadPoolExecutor`` whose jobs are recorded in the process's ledger while they are open."""

    def __init__(self, threads: int, state_dir: Path) -> None:
        self.threads = threads
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="shop-recs-job")
        self._ledger = _Ledger(state_dir / f"{os.getpid()}.json")
        self._futures: set[Future] = set()
        self._lock = threading.Lock()

    def submit(self, key: str, fn: Callable[[], object]) -> Future:
        """Run ``fn`` on a pool thread; ``fn`` records its own outcome (it should not raise)."""
        self._ledger.add(key)
        # The pool thread logs under the request id of the request that started the job.
        future = self._pool.submit(self._run, key, requestid.carrying(fn))
        with self._lock:
            self._futures.add(future)
        future.add_done_callback(self._forget)
        return future

    def _run(self, key: str, fn: Callable[[], object]) -> None:
        try:
            fn()
        except Exception:  # noqa: BLE001 - a pool thread must survive any job
            logger.exception("background job %s raised", key)
        finally:
            self._ledger.discard(key)
            # Pool threads live on between jobs: close this thread's connections so none is left
            # open (or mid-transaction) for the next job, and SQLite releases its file handle.
            connections.close_all()

    def _forget(self, future: Future) -> None:
        with self._lock:
            self._futures.discard(future)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every submitted job has finished; ``False`` if ``timeout`` passed first."""
        with self._lock:
            pending = list(self._futures)
        _done, not_done = wait_futures(pending, timeout=timeout)
        return not not_done

    def shutdown(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait)


_current: BackgroundExecutor | None = None
_start_lock = threading.Lock()
_request = threading.local()


def current() -> BackgroundExecutor | None:
    """The process's pool, once started (``None`` in commands, shells and tests that did not start one)."""
    return _current


def start(threads: int, state_dir: Path) -> tuple[BackgroundExecutor, list[str]]:
    """Start the process's pool (once) and return it with the keys orphaned by dead processes."""
    global _current
    with _start_lock:
        if _current is not None:
            return _current, []
        orphans = orphaned_keys(state_dir)
        _current = BackgroundExecutor(threads, state_dir)
        logger.info("background jobs: %d thread(s) in process %d", threads, os.getpid())
        return _current, orphans


def stop(wait: bool = True) -> None:
    """Shut the pool down (tests; the interpreter also joins pool threads at exit)."""
    global _current
    with _start_lock:
        pool, _current = _current, None
    if pool is not None:
        pool.shutdown(wait=wait)


def begin_request() -> None:
    """From here until :func:`end_request`, this thread's submissions wait for the response to be sent."""
    end_request()  # a request whose finish signal never came must not keep its jobs back
    _request.deferred = []


def end_request() -> None:
    """Start the jobs this thread's request submitted (its response has been sent)."""
    deferred: list[Callable[[], object]] = getattr(_request, "deferred", None) or []
    _request.deferred = None
    for submit in deferred:
        submit()


def after_response(submit: Callable[[], object]) -> None:
    """Call ``submit`` when the current request's response has been sent, or now outside a request."""
    deferred = getattr(_request, "deferred", None)
    if deferred is None:
        submit()
    else:
        # Run after the response, when the request's id is no longer current: keep it for the job.
        deferred.append(requestid.carrying(submit))
