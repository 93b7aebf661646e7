"""Prometheus metrics: what is recorded, how ``/metrics`` is scraped and who may scrape it.

Recorded with ``prometheus_client`` (docs/operations.md, "Metrics"):

* ``shop_recs_api_request_duration_seconds{route,method,status}``: every ``/api/v1/`` request, fast
  path and DRF alike, by URL name (``api-recs-customer``, ``api-search``, ...) and status class
  (``2xx``, ``4xx``, ...), timed by :class:`MetricsMiddleware` around the whole middleware stack;
* ``shop_recs_api_rate_limited_total{limit}``: requests refused by ``shop_recs.api.ratelimit``;
* ``shop_recs_job_duration_seconds{kind,outcome}`` and ``shop_recs_jobs_finished_total{kind,outcome}``:
  the one job lifecycle (``shop_recs.platform.jobs``: ``succeed``, ``fail``, the stale sweep, a
  failed enqueue), by job row model;
* ``shop_recs_serving_cache_lookups_total{cache,result}``: hits and misses of the serving caches
  (API keys, active model version, catalog snapshot, live activity);
* ``shop_recs_celery_queue_length{queue}``, ``shop_recs_celery_unacked``, ``shop_recs_celery_broker_up``:
  read from the Redis broker at scrape time (:class:`CeleryQueueCollector`).

No label carries a store: stores are unbounded (every series is kept per process in multiprocess mode
and per scrape in Prometheus), and per-store traffic is already in the served-list logs and the
dashboard. Every label value comes from a fixed set (URL names, status classes, job models, cache names).

Several gunicorn workers: set ``PROMETHEUS_MULTIPROC_DIR`` (the repository's ``gunicorn.conf.py``
does, and wipes the directory when the server starts); each process then writes its values to
memory-mapped files there and a scrape, answered by any worker, adds them up.
"""

from __future__ import annotations

import atexit
import hmac
import ipaddress
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

logger = logging.getLogger(__name__)

#: Seconds: sub-millisecond hot-path answers up to multi-second batch imports.
API_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Seconds: a profile refresh of a few seconds up to a two-hour training run.
JOB_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)

API_LATENCY = Histogram(
    "shop_recs_api_request_duration_seconds",
    "API v1 request latency by URL name, method and status class (fast path and DRF alike).",
    ["route", "method", "status"],
    buckets=API_BUCKETS,
)
RATE_LIMITED = Counter(
    "shop_recs_api_rate_limited",
    "API requests refused with 429 by the per-key or per-address rate limit.",
    ["limit"],
)
JOB_DURATION = Histogram(
    "shop_recs_job_duration_seconds",
    "Seconds from a job row's claim to its end, by job kind (row model) and outcome.",
    ["kind", "outcome"],
    buckets=JOB_BUCKETS,
)
JOBS_FINISHED = Counter(
    "shop_recs_jobs_finished",
    "Job rows that ended, by kind and outcome (succeeded, failed, stale, not_enqueued).",
    ["kind", "outcome"],
)
CACHE_LOOKUPS = Counter(
    "shop_recs_serving_cache_lookups",
    "Serving cache lookups by cache and result (a miss reads the database).",
    ["cache", "result"],
)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_STATUS_CLASSES = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}
API_PREFIX = "/api/v1/"

# Bound label children, looked up once: ``labels()`` costs a lock and a tuple build per call.
_api_children: dict[tuple[str, str, str], Any] = {}
_cache_children: dict[tuple[str, bool], Any] = {}
#: Cache lookups counted in plain ints and added to the counters in batches: a recommendation request
#: makes four lookups, and each counter increment in multiprocess mode is a locked write to a
#: memory-mapped file (~1.3 µs). Flushed every FLUSH_EVERY lookups, by the middleware once a second,
#: before a scrape in this process and at exit, so a scrape lags by at most about a second.
_pending: dict[tuple[str, bool], int] = {}
_pending_total = 0
FLUSH_EVERY = 256
FLUSH_SECONDS = 1.0
_last_flush = 0.0


def enabled() -> bool:
    """``METRICS_ENABLED`` (default on)."""
    return bool(settings.METRICS_ENABLED)


def observe_api(route: str, method: str, status: int, seconds: float) -> None:
    """Record one API request (route: the URL name; status: the HTTP status code)."""
    key = (route, method if method in _METHODS else "other", _STATUS_CLASSES.get(status // 100, "other"))
    child = _api_children.get(key)
    if child is None:
        child = _api_children[key] = API_LATENCY.labels(*key)
    child.observe(seconds)


def cache_lookup(cache: str, hit: bool) -> None:
    """Count a serving cache lookup; a no-op with metrics off. ``cache`` must be a fixed name."""
    global _pending_total
    if not settings.METRICS_ENABLED:
        return
    key = (cache, hit)
    # Unlocked: two threads of one process may rarely lose one count here (a metric, not a ledger).
    _pending[key] = _pending.get(key, 0) + 1
    _pending_total += 1
    if _pending_total >= FLUSH_EVERY:
        flush_pending()


def flush_pending() -> None:
    """Add the cache lookups counted since the last flush to their counters."""
    global _pending, _pending_total, _last_flush
    pending, _pending, _pending_total = _pending, {}, 0
    _last_flush = time.monotonic()
    for key, n in pending.items():
        child = _cache_children.get(key)
        if child is None:
            child = _cache_children[key] = CACHE_LOOKUPS.labels(key[0], "hit" if key[1] else "miss")
        child.inc(n)


atexit.register(flush_pending)


def rate_limited(limit: str) -> None:
    """Count a 429 of the rate limiter (``limit``: ``api_key`` or ``ip``)."""
    if settings.METRICS_ENABLED:
        RATE_LIMITED.labels(limit).inc()


def job_finished(kind: str, outcome: str, seconds: float | None = None, count: int = 1) -> None:
    """Record ``count`` job rows of ``kind`` that ended with ``outcome``; ``seconds`` from claim to end
    when the row was claimed (a row failed while queued has no duration)."""
    if not settings.METRICS_ENABLED or count <= 0:
        return
    try:
        JOBS_FINISHED.labels(kind, outcome).inc(count)
        if seconds is not None and seconds >= 0:
            JOB_DURATION.labels(kind, outcome).observe(seconds)
    except Exception:  # noqa: BLE001 - bookkeeping must never fail a job's own status write
        logger.exception("could not record the metrics of a %s job", kind)


class MetricsMiddleware:
    """Times every ``/api/v1/`` request around the rest of the stack (first in ``MIDDLEWARE``).

    Removed from the stack at start-up when ``METRICS_ENABLED`` is off (``MiddlewareNotUsed``), so
    switching metrics off costs nothing per request.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        if not settings.METRICS_ENABLED:
            raise MiddlewareNotUsed
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path_info.startswith(API_PREFIX):
            return self.get_response(request)
        t0 = time.perf_counter()
        response = self.get_response(request)
        match = request.resolver_match
        # A request answered before URL resolution (rate limited, NUL in the URL) or an unknown path
        # has no route; "-" keeps such requests in one series instead of one per path.
        route = (match.url_name or "unnamed") if match is not None else "-"
        observe_api(route, request.method or "", response.status_code, time.perf_counter() - t0)
        if _pending_total and time.monotonic() - _last_flush >= FLUSH_SECONDS:
            flush_pending()
        return response


# --- queue depth, read at scrape time -------------------------------------------------------------

#: kombu's Redis transport keeps priority levels 3, 6, 9 of queue ``q`` in lists ``q\x06\x16<p>``.
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")
_broker_clients: dict[str, Any] = {}


def _broker_client(url: str) -> Any:
    client = _broker_clients.get(url)
    if client is None:
        import redis  # only where a Redis broker is scraped

        timeout = float(settings.METRICS_BROKER_TIMEOUT_MS) / 1000
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        _broker_clients[url] = client
    return client


def default_queues() -> list[str]:
    """The queues the project sends to: the default queue and, where configured, the heavy one."""
    queues = [settings.CELERY_TASK_DEFAULT_QUEUE]
    heavy = settings.CELERY_HEAVY_QUEUE
    if heavy and heavy not in queues:
        queues.append(heavy)
    return queues


class CeleryQueueCollector:
    """Celery queue lengths (``LLEN``, one pipelined round trip with a short timeout) at scrape time.

    Embedded mode (no broker) exports nothing; a non-Redis broker exports nothing either (see
    docs/operations.md). With the broker unreachable the scrape still succeeds:
    ``shop_recs_celery_broker_up`` is 0 and the queue lengths are absent, i.e. unknown, not 0.
    """

    def collect(self) -> Iterator[Metric]:
        url = settings.CELERY_BROKER_URL
        if not url or not url.startswith(("redis://", "rediss://", "unix://")):
            return
        queues = list(settings.METRICS_CELERY_QUEUES) or default_queues()
        up = GaugeMetricFamily("shop_recs_celery_broker_up", "1 if the Redis broker answered the scrape's LLEN.")
        try:
            pipe = _broker_client(url).pipeline(transaction=False)
            for queue in queues:
                for suffix in _PRIORITY_SUFFIXES:
                    pipe.llen(queue + suffix)
            pipe.hlen("unacked")  # kombu's hash of delivered, not yet acknowledged tasks (acks_late)
            values = pipe.execute()
        except Exception as exc:  # noqa: BLE001 - redis-py raises ConnectionError, TimeoutError, ...
            logger.warning("metrics: the broker did not answer (%s: %s)", type(exc).__name__, exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        lengths = GaugeMetricFamily(
            "shop_recs_celery_queue_length", "Tasks waiting in a Celery queue (all priorities).", labels=["queue"]
        )
        n = len(_PRIORITY_SUFFIXES)
        for i, queue in enumerate(queues):
            lengths.add_metric([queue], float(sum(values[i * n : (i + 1) * n])))
        yield lengths
        unacked = GaugeMetricFamily("shop_recs_celery_unacked", "Tasks delivered to a worker and not yet acknowledged.")
        unacked.add_metric([], float(values[-1]))
        yield unacked


class _Combined:
    """Duck-typed registry for ``generate_latest``: the collectors' metrics, in order."""

    def __init__(self, *collectors: Any) -> None:
        self.collectors = collectors

    def collect(self) -> Iterable[Metric]:
        for collector in self.collectors:
            yield from collector.collect()


def multiprocess_dir() -> str:
    """``PROMETHEUS_MULTIPROC_DIR`` ("" when this process keeps its values in memory); prometheus_client
    reads the same variable when it is imported."""
    return settings.PROMETHEUS_MULTIPROC_DIR


def exposition() -> bytes:
    """The text exposition a scrape returns: every process's values (multiprocess mode) or this
    process's (one process), plus the broker's queue lengths."""
    flush_pending()
    if multiprocess_dir():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        base: Any = registry
    else:
        base = REGISTRY
    return generate_latest(_Combined(base, CeleryQueueCollector()))  # type: ignore[arg-type]


# --- who may scrape --------------------------------------------------------------------------------

_networks_cache: tuple[tuple[str, ...], list[Any]] = ((), [])
_PROXY_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_X_REAL_IP", "HTTP_FORWARDED")


def parse_networks(entries: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """``METRICS_ALLOWED_IPS`` entries (addresses or CIDR networks); ``ValueError`` names a bad one."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"METRICS_ALLOWED_IPS: {entry!r} is not an IP address or network") from exc
    return networks


def _allowed_networks() -> list[Any]:
    global _networks_cache
    entries = tuple(settings.METRICS_ALLOWED_IPS)
    if _networks_cache[0] != entries:
        _networks_cache = (entries, parse_networks(entries))
    return _networks_cache[1]


def scrape_allowed(request: HttpRequest) -> bool:
    """A valid ``Authorization: Bearer <METRICS_TOKEN>`` (when a token is set), or a direct request
    from an address in ``METRICS_ALLOWED_IPS``.

    A request that came through a proxy (it carries ``X-Forwarded-For``, ``X-Real-IP`` or
    ``Forwarded``) is never allowed by address: behind a reverse proxy on the same host every public
    request arrives from 127.0.0.1, the default allowed address. Such a scrape needs the token.
    """
    token = settings.METRICS_TOKEN
    if token:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _sep, presented = header.partition(" ")
        if scheme == "Bearer" and hmac.compare_digest(presented.strip().encode(), token.encode()):
            return True
    if any(request.META.get(h) for h in _PROXY_HEADERS):
        return False
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in network for network in _allowed_networks())


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """``GET /metrics``: the Prometheus text format; 404 with metrics off, 403 for anyone else."""
    if not settings.METRICS_ENABLED:
        raise Http404("metrics are off")
    if not scrape_allowed(request):
        return HttpResponse(
            "Forbidden: scrape from an address in METRICS_ALLOWED_IPS or send the METRICS_TOKEN bearer token.\n",
            status=403,
            content_type="text/plain; charset=utf-8",
        )
    response = HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response


# --- Celery workers: their own exporter ------------------------------------------------------------

_exporter_lock = threading.Lock()
_exporter_started = False


def start_worker_exporter() -> int | None:
    """In a Celery worker's main process, serve its pool's metrics (jobs run there) on
    ``METRICS_WORKER_PORT`` at ``METRICS_WORKER_ADDR`` (default 127.0.0.1); 0 or metrics off: nothing.

    The worker needs its own ``PROMETHEUS_MULTIPROC_DIR`` (the pool's children write there); it is
    emptied here, before the pool starts. Returns the port served.
    """
    global _exporter_started
    port = int(settings.METRICS_WORKER_PORT)
    if not settings.METRICS_ENABLED or port <= 0:
        return None
    # Only Celery workers serve their own port; web processes never need the HTTP server module.
    from prometheus_client import start_http_server

    with _exporter_lock:
        if _exporter_started:
            return port
        path = multiprocess_dir()
        if path:
            wipe_multiprocess_dir(path)
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            start_http_server(port, addr=settings.METRICS_WORKER_ADDR, registry=registry)
        else:
            start_http_server(port, addr=settings.METRICS_WORKER_ADDR)
        _exporter_started = True
    logger.info("metrics of this worker on %s:%s", settings.METRICS_WORKER_ADDR, port)
    return port


def wipe_multiprocess_dir(path: str) -> int:
    """Create ``path`` or delete the ``*.db`` files a previous server left there (stale counts of dead
    processes would otherwise be added to every scrape). Returns how many files were deleted."""
    os.makedirs(path, exist_ok=True)
    removed = 0
    for name in os.listdir(path):
        if name.endswith(".db"):
            try:
                os.remove(os.path.join(path, name))
                removed += 1
            except FileNotFoundError:
                pass
    return removed
