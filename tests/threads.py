"""Run a function in several threads at once, and fail when any of them fails.

A bare ``threading.Thread`` turns an exception into a printed warning: a concurrency test whose
workers all crashed could still pass its asserts. :func:`run_in_threads` collects every thread's
outcome through ``concurrent.futures`` and re-raises the first exception (by thread index).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")


def run_in_threads(fn: Callable[[int], T], n: int, *, timeout: float = 120.0, close_db: bool = True) -> list[T]:
    """Call ``fn(i)`` for ``i`` in ``0..n-1``, each in its own thread, all released together.

    Returns the results in thread order. If any call raised, the first one's exception (by index) is
    raised here; a thread still running after ``timeout`` seconds raises ``TimeoutError``.
    ``close_db``: each thread closes its own Django database connection when done (threads get their
    own connection; an open one would keep the test database from being dropped).
    """
    barrier = threading.Barrier(n)

    def run(i: int) -> T:
        try:
            barrier.wait(timeout=timeout)
            return fn(i)
        finally:
            if close_db:
                from django.db import connection

                connection.close()

    pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="test-worker")
    try:
        futures = [pool.submit(run, i) for i in range(n)]
        _done, pending = wait(futures, timeout=timeout)
        if pending:
            raise TimeoutError(f"{len(pending)} of {n} threads still running after {timeout} s")
        return [f.result() for f in futures]  # .result() re-raises the thread's exception
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
