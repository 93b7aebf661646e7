"""One id per request, on every log line it causes: the web request's and its background jobs'.

:class:`RequestIdMiddleware` (first in ``MIDDLEWARE``) takes the proxy's ``X-Request-ID`` when it is
sane (at most 64 characters of ``[A-Za-z0-9._-]``; anything else could forge or break log lines) or
makes a new one (uuid4), keeps it in a context variable for the request, and echoes it in the
response's ``X-Request-ID`` header. When the proxy sent one, the API's JSON errors echo the same id
(``shop_recs.api.errors`` reads the request's ``HTTP_X_REQUEST_ID``, which the middleware replaces
with the sane id).

:class:`RequestIdFilter` puts ``record.request_id`` on every log record ("-" outside a request);
:class:`JsonFormatter` writes one JSON object per line (``LOG_FORMAT=json``).

Jobs: a Celery task sent during a request carries the id in a message header (:data:`TASK_HEADER`),
and the worker binds it while the task runs; a job handed to the embedded pool
(``shop_recs.platform.executor``) gets it through :func:`carrying`.
"""

from __future__ import annotations

import contextlib
import logging
import re
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any

import orjson
from django.http import HttpRequest, HttpResponse

HEADER = "X-Request-ID"
META_KEY = "HTTP_X_REQUEST_ID"
#: The Celery message header that carries the id from the sender to the worker.
TASK_HEADER = "shop_recs_request_id"
_SANE = re.compile(r"[A-Za-z0-9._-]{1,64}")

_current: ContextVar[str | None] = ContextVar("shop_recs_request_id", default=None)


def current() -> str | None:
    """The id of the request (or job) this code runs for, if any."""
    return _current.get()


def is_sane(value: object) -> bool:
    """At most 64 characters of letters, digits, ``.``, ``_`` and ``-``."""
    return isinstance(value, str) and _SANE.fullmatch(value) is not None


def accept_or_generate(incoming: str | None) -> str:
    """The incoming id if it is sane, else a new uuid4 (hex, 32 characters)."""
    return incoming if incoming is not None and is_sane(incoming) else uuid.uuid4().hex


@contextlib.contextmanager
def bound(request_id: str | None) -> Iterator[None]:
    """Run the block with ``request_id`` as the current id (restored afterwards)."""
    token = _current.set(request_id)
    try:
        yield
    finally:
        _current.reset(token)


def carrying(fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` wrapped to run with the id current *now*: for work that another thread runs later."""
    request_id = current()
    if request_id is None:
        return fn

    def run() -> Any:
        with bound(request_id):
            return fn()

    return run


class RequestIdMiddleware:
    """Binds the request id for the request, echoes it in ``X-Request-ID`` (see the module docstring)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.META.get(META_KEY)
        request_id = accept_or_generate(incoming)
        if incoming is not None:
            # The API's error bodies echo a proxy's id (shop_recs.api.errors reads the header): they
            # echo the sane one the logs carry, never a forged or oversized value. Without an incoming
            # header the bodies stay as documented (no request_id); the response header has it.
            request.META[META_KEY] = request_id
        request.request_id = request_id  # type: ignore[attr-defined]
        _tag_sentry_scope(request_id)
        with bound(request_id):
            response = self.get_response(request)
        response[HEADER] = request_id
        return response


def _tag_sentry_scope(request_id: str) -> None:
    """Tag the request's Sentry events with the id (a no-op when Sentry is not initialised)."""
    try:
        import sentry_sdk  # here, not at the top: the module must load without sentry-sdk too
    except ImportError:  # pragma: no cover - sentry-sdk is pinned in requirements.txt
        return
    if sentry_sdk.get_client().is_active():
        sentry_sdk.set_tag("request_id", request_id)


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record (attach it to handlers: it then sees propagated records)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = current() or "-"
        return True


#: LogRecord attributes that are not "extra" fields.
_RECORD_FIELDS = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys() | {"message", "asctime", "request_id"}
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, request_id, the
    exception's traceback if any, and the record's ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or current() or "-",
            "process": record.process,
            "thread": record.threadName,
        }
        if record.exc_info:
            entry["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            entry["exc_info"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        elif record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = record.stack_info
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and not key.startswith("_") and key not in entry:
                entry[key] = value
        # default=str: an extra field that JSON cannot represent is logged as its str(), never dropped.
        return orjson.dumps(entry, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


# --- Celery: the id travels with the task message ----------------------------------------------

_task_tokens: dict[str, Token[str | None]] = {}


def _add_task_header(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """``before_task_publish``: a task sent while a request (or a job) runs carries its id."""
    request_id = current()
    if request_id and headers is not None:
        headers.setdefault(TASK_HEADER, request_id)


def task_request_id(task: Any) -> str | None:
    """The id a task message carries: a top-level request field on a worker (protocol 2 merges
    custom headers into the request), under ``headers`` for ``apply(headers=...)``."""
    request = getattr(task, "request", None)
    value = getattr(request, TASK_HEADER, None)
    if value is None:
        value = (getattr(request, "headers", None) or {}).get(TASK_HEADER)
    return value if is_sane(value) else None


def _bind_for_task(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    """``task_prerun``: bind the message's id while the task runs. An eager task without the header
    runs inside its caller and keeps the caller's id: nothing to do."""
    request_id = task_request_id(task)
    if request_id and task_id:
        _task_tokens[task_id] = _current.set(request_id)


def _unbind_for_task(task_id: str | None = None, **_: Any) -> None:
    token = _task_tokens.pop(task_id, None) if task_id else None
    if token is not None:
        _current.reset(token)


def _format_worker_logs(logger: logging.Logger | None = None, **_: Any) -> None:
    """``after_setup_logger``/``after_setup_task_logger``: a worker's log lines carry the id, and
    are JSON under ``LOG_FORMAT=json`` (Celery installs its own handlers; its log file, if any, stays)."""
    from django.conf import settings  # at signal time: this module is imported by the settings' LOGGING

    if logger is None:
        return
    for handler in logger.handlers:
        handler.addFilter(RequestIdFilter())
        if settings.LOG_FORMAT == "json":
            handler.setFormatter(JsonFormatter())


def connect_celery_signals() -> None:
    """Connect the handlers above (idempotent: Celery signals keep one receiver per function)."""
    from celery import signals  # only when connecting: log formatting must not import Celery

    signals.before_task_publish.connect(_add_task_header, weak=False)
    signals.task_prerun.connect(_bind_for_task, weak=False)
    signals.task_postrun.connect(_unbind_for_task, weak=False)
    signals.after_setup_logger.connect(_format_worker_logs, weak=False)
    signals.after_setup_task_logger.connect(_format_worker_logs, weak=False)
