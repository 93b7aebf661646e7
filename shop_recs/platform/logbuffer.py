"""Append-only log rows written off the request path: served recommendation lists, search queries.

Every served list and every search writes one log row. As one INSERT per request that is a database
round trip of ~0.35 ms (a PostgreSQL backend's parse/plan/execute plus the client's send/receive on
this class of machine), as much as the whole rest of a recommendation request. With buffering on,
a request only appends the row to an in-process buffer (~2 µs); a background thread writes each
table's rows with one multi-row INSERT every ``SERVING_LOG_FLUSH_MS`` milliseconds (default 200),
or sooner when ``SERVING_LOG_BUFFER_ROWS`` rows are waiting.

``SERVING_LOG_BUFFER_ROWS`` (setting or environment variable):

* ``0``: every row is INSERTed on the request, as its own statement. On PostgreSQL in autocommit the
  statement commits with ``synchronous_commit = off`` (this statement only, see
  :func:`shop_recs.platform.sql.without_wal_wait`). The default when ``DEBUG`` is on (development, the
  test suite), where a row must be readable right after the response.
* ``N > 0`` (the default, 500, when ``DEBUG`` is off): buffered as above. The trade-offs, stated in
  ``docs/serving.md``: a row becomes visible up to ``SERVING_LOG_FLUSH_MS`` after the response
  (attribution waits ``ATTRIBUTION_SETTLE_SECONDS`` before crediting an event for that reason), and a
  worker killed with SIGKILL loses the rows of its last flush interval. A graceful stop (gunicorn's
  SIGTERM, ``atexit``) writes them. When the database is unreachable the rows are kept and retried,
  up to ``MAX_PENDING_ROWS`` per table; beyond that the oldest are dropped and counted in the log.

The flusher thread has its own database connection (Django connections are per thread), on which it
sets ``synchronous_commit = off`` once: that connection only ever writes these log rows.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, connections

from shop_recs.platform import sql as platform_sql

logger = logging.getLogger(__name__)

#: Rows kept per table while the database cannot be written; older rows beyond this are dropped.
MAX_PENDING_ROWS = 100_000
#: After the database was found unreachable, the flusher waits this long before trying again.
OUTAGE_RETRY_SECONDS = 2.0
#: Rows per statement when flushing (keeps an INSERT's parameter count bounded).
ROWS_PER_STATEMENT = 500


def buffer_rows() -> int:
    """``SERVING_LOG_BUFFER_ROWS``: 0 writes each row on the request; N > 0 buffers (see module doc)."""
    return settings.SERVING_LOG_BUFFER_ROWS


def flush_interval() -> float:
    return settings.SERVING_LOG_FLUSH_MS / 1000.0


def log_commit_may_skip_wal_wait() -> bool:
    """True where a log INSERT may commit without waiting for the WAL flush: PostgreSQL in
    autocommit (the statement is its own transaction; inside a caller's transaction their commit
    decides)."""
    return connection.vendor == "postgresql" and connection.get_autocommit() and not connection.in_atomic_block


class LogTable:
    """One log table: ``write(row)`` on the request, batched INSERTs from the flusher thread.

    ``insert_sql`` returns ``INSERT INTO <table> (<columns>) VALUES (%s, ...)`` for the current
    database vendor (built lazily: the connection's vendor is not known at import time).
    """

    def __init__(self, name: str, insert_sql: Callable[[], str]) -> None:
        self.name = name
        self._insert_sql = insert_sql
        self._sql: dict[tuple[str, bool], str] = {}
        self._rows: list[Sequence[Any]] = []
        self._lock = threading.Lock()
        #: Rows dropped (refused by the database, or beyond ``MAX_PENDING_ROWS`` during an outage).
        self.dropped = 0
        #: Rows that could not be INSERTed on the request (buffering off) and were buffered instead.
        self.deferred = 0
        _tables.append(self)

    def sql(self, async_commit: bool = False) -> str:
        key = (connection.vendor, async_commit)
        if key not in self._sql:
            base = self._insert_sql()
            self._sql[key] = platform_sql.without_wal_wait(base) if async_commit else base
        return self._sql[key]

    def write(self, row: Sequence[Any]) -> None:
        """Record one row: INSERTed now (buffering off) or appended to the buffer."""
        limit = buffer_rows()
        if limit <= 0:
            try:
                platform_sql.insert_rows(self.sql(async_commit=log_commit_may_skip_wal_wait()), row)
                return
            except (OperationalError, InterfaceError):
                # The database is unreachable: serving must not fail for a log row. Keep it in the
                # buffer (bounded like the flusher's, MAX_PENDING_ROWS) for the flusher to write later.
                if connection.in_atomic_block:
                    raise  # the caller's transaction is broken anyway; its own error handling decides
                self.deferred += 1
                logger.warning("database unreachable: %s row kept in the buffer (%s so far)", self.name, self.deferred)
                self._requeue([row])
                _flusher.ensure_started()
                return
        with self._lock:
            self._rows.append(row)
            full = len(self._rows) >= limit
        _flusher.ensure_started()
        if full:
            _flusher.wake()

    @property
    def pending(self) -> int:
        return len(self._rows)

    def flush(self) -> int:
        """Write the buffered rows now with this thread's connection; returns how many were written.

        A chunk the database refuses is retried row by row, so one bad row (say, of a store deleted
        since the request) cannot hold the others back: the rows it refuses are dropped and logged.
        When it refuses every row, or cannot be reached, the failure is not the rows' own: they go
        back to the front of the buffer (bounded by ``MAX_PENDING_ROWS``) for the next flush. The
        caller's request is never failed by any of it.
        """
        with self._lock:
            rows, self._rows = self._rows, []
        if not rows:
            return 0
        head, values = self.sql().split(" VALUES ", 1)
        written = 0
        for lo in range(0, len(rows), ROWS_PER_STATEMENT):
            chunk = rows[lo : lo + ROWS_PER_STATEMENT]
            try:
                self._write_chunk(head, values, chunk)
                written += len(chunk)
                continue
            except (OperationalError, InterfaceError) as exc:
                # One line, not a traceback: the flusher retries every OUTAGE_RETRY_SECONDS meanwhile.
                logger.warning("database unreachable (%s): keeping %s buffered %s rows", exc, len(rows) - lo, self.name)
                self._requeue(rows[lo:])
                raise
            except Exception as exc:  # noqa: BLE001 - decided row by row below
                logger.warning(
                    "a batch of %s %s rows was refused (%s); retrying row by row", len(chunk), self.name, exc
                )
            good, bad = self._rows_one_by_one(head, values, chunk)
            if not good:
                logger.error(
                    "could not write %s buffered %s rows; keeping them for the next flush", len(chunk), self.name
                )
                self._requeue(rows[lo:])
                return written
            written += good
            if bad:
                self.dropped += len(bad)
        return written

    def _write_chunk(self, head: str, values: str, chunk: list[Sequence[Any]]) -> None:
        """One statement for the chunk: ``COPY ... FROM STDIN`` on PostgreSQL (measured: 150 list rows
        in ~0.5 ms of client CPU, against ~6 ms for a multi-row INSERT, whose parameters psycopg
        quotes one by one in Python while holding the GIL the serving thread needs), else INSERT."""
        if connection.vendor == "postgresql":
            platform_sql.copy_rows(head.removeprefix("INSERT INTO ").strip(), chunk)
            return
        self._execute(f"{head} VALUES " + ", ".join([values] * len(chunk)), [v for r in chunk for v in r])

    def _execute(self, sql: str, params: list[Any]) -> None:
        platform_sql.insert_rows(sql, params)

    def _rows_one_by_one(self, head: str, values: str, chunk: list[Sequence[Any]]) -> tuple[int, list[Sequence[Any]]]:
        good, bad = 0, []
        for row in chunk:
            try:
                self._execute(f"{head} VALUES {values}", list(row))
                good += 1
            except Exception as exc:  # noqa: BLE001
                bad.append(row)
                logger.error(
                    "dropped a %s row the database refuses (%s: %s): %r", self.name, type(exc).__name__, exc, row
                )
        return good, bad

    def _requeue(self, rows: list[Sequence[Any]]) -> None:
        with self._lock:
            self._rows = rows + self._rows
            excess = len(self._rows) - MAX_PENDING_ROWS
            if excess > 0:
                del self._rows[:excess]
                self.dropped += excess
                logger.error("dropped the %s oldest buffered %s rows (database unreachable)", excess, self.name)


_tables: list[LogTable] = []


def flush_all() -> int:
    """Write every table's buffered rows now (tests, shutdown); returns the rows written.

    Raises ``OperationalError``/``InterfaceError`` when the database is unreachable, after putting
    the rows back in the buffer (every table is tried)."""
    written, unreachable = 0, None
    for table in _tables:
        try:
            written += table.flush()
        except (OperationalError, InterfaceError) as exc:
            unreachable = exc
    if unreachable is not None:
        raise unreachable
    return written


class _Flusher:
    """The background thread that flushes every :class:`LogTable` (one per process, fork-aware)."""

    def __init__(self) -> None:
        self._pid = 0
        self._thread: threading.Thread | None = None
        self._wakeup = threading.Event()
        self._start_lock = threading.Lock()
        self._stopping = False

    def ensure_started(self) -> None:
        # A forked child (gunicorn worker, Celery prefork) inherits the object but not the thread.
        if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
            return
        with self._start_lock:
            if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
                return
            self._pid = os.getpid()
            self._stopping = False
            self._wakeup = threading.Event()
            self._thread = threading.Thread(target=self._run, name="shop_recs-logbuffer", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        self._wakeup.set()

    def _run(self) -> None:
        prepared = False
        retry_at = 0.0
        while True:
            self._wakeup.wait(flush_interval())
            self._wakeup.clear()
            stopping = self._stopping
            if not stopping and time.monotonic() < retry_at:
                continue  # the database was unreachable: don't try on every wake-up (rows stay buffered)
            try:
                if not prepared and connection.vendor == "postgresql":
                    # This thread's own connection only writes log rows: no WAL-flush wait on commit.
                    platform_sql.skip_wal_wait_on_this_connection()
                    prepared = True
                flush_all()
                retry_at = 0.0
            except (OperationalError, InterfaceError) as exc:
                retry_at = time.monotonic() + OUTAGE_RETRY_SECONDS
                logger.warning("database unreachable (%s): log rows stay buffered, next try in a moment", exc)
                prepared = False
                connection.close()
            except Exception:  # noqa: BLE001 - keep the thread alive; flush() already logged row errors
                logger.exception("log buffer flush failed")
                prepared = False
                connection.close()
            else:
                connection.close_if_unusable_or_obsolete()
                if connection.connection is None:
                    prepared = False
            if stopping:
                break
        connection.close()

    def stop(self) -> None:
        """Stop the thread (it writes what is pending and closes its connection); ``write`` restarts it."""
        self._stopping = True
        self._wakeup.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and self._pid == os.getpid():
            thread.join(timeout=5)


_flusher = _Flusher()


def stop_flusher() -> None:
    """Stop this process's flusher thread after a final flush (tests; ``atexit`` does it at exit)."""
    _flusher.stop()
    flush_all()


def _flush_at_exit() -> None:
    _flusher.stop()
    try:
        flush_all()
    except Exception:  # noqa: BLE001, S110 - nothing left to report to at interpreter exit
        pass
    finally:
        connections.close_all()


atexit.register(_flush_at_exit)
