"""tests/threads.py: a failing thread fails the test instead of becoming a warning."""

from __future__ import annotations

import threading

import pytest

from tests.threads import run_in_threads


def test_results_come_back_in_thread_order():
    assert run_in_threads(lambda i: i * i, 5, close_db=False) == [0, 1, 4, 9, 16]


def test_threads_run_at_the_same_time():
    both_inside = threading.Barrier(3)
    # Every thread waits for all the others: this only finishes if they all run together.
    assert run_in_threads(lambda i: both_inside.wait(timeout=10) >= 0, 3, close_db=False) == [True] * 3


def test_an_exception_in_any_thread_is_raised():
    def worker(i: int) -> int:
        if i == 2:
            raise ValueError("thread 2 crashed")
        return i

    with pytest.raises(ValueError, match="thread 2 crashed"):
        run_in_threads(worker, 4, close_db=False)


def test_the_first_exception_by_index_wins():
    def worker(i: int) -> None:
        raise RuntimeError(f"thread {i}")

    with pytest.raises(RuntimeError, match="thread 0"):
        run_in_threads(worker, 3, close_db=False)


def test_an_assert_in_a_thread_fails_the_test():
    """What the old ``_hammer`` hid: a crash in every worker, and the caller's asserts still ran."""

    def worker(i: int) -> int:
        assert i < 0, "worker assert"
        return 1

    with pytest.raises(AssertionError, match="worker assert"):
        run_in_threads(worker, 2, close_db=False)


def test_a_hung_thread_times_out():
    release = threading.Event()
    try:
        with pytest.raises(TimeoutError):
            run_in_threads(lambda i: release.wait(5) if i == 0 else None, 2, timeout=0.3, close_db=False)
    finally:
        release.set()


@pytest.mark.django_db(transaction=True)
def test_each_thread_closes_its_database_connection():
    from django.db import connection

    def worker(i: int) -> int:
        with connection.cursor() as cur:
            cur.execute("SELECT 1")
            return cur.fetchone()[0]

    assert run_in_threads(worker, 2) == [1, 1]
