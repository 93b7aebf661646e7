"""gunicorn settings hooks for shop_recs (gunicorn reads ./gunicorn.conf.py from its working directory).

Only what the application needs of every gunicorn it runs under: Prometheus multiprocess mode
(docs/operations.md, "Metrics"). Workers, binds and timeouts stay on the command line.

* ``PROMETHEUS_MULTIPROC_DIR`` unset and ``METRICS_ENABLED`` not off: a directory of this server's
  own (``<tmp>/shop_recs-prometheus-<master pid>``) is used, and removed when the server stops. It is
  set here, at import, so it is in the environment before any worker imports ``prometheus_client``
  (also with ``--preload``).
* ``on_starting``: the directory is emptied (files of a previous server's dead workers would be added
  to every scrape).
* ``child_exit``: a dead worker's files are marked dead (``mark_process_dead``).
"""

from __future__ import annotations

import os
import shutil
import tempfile

_OFF = {"", "0", "false", "no", "off"}  # as settings.envbool reads METRICS_ENABLED
_metrics_on = os.environ.get("METRICS_ENABLED", "1").strip().lower() not in _OFF
_own_dir = ""
if _metrics_on and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _own_dir = os.path.join(tempfile.gettempdir(), f"shop_recs-prometheus-{os.getpid()}")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _own_dir


def on_starting(server) -> None:  # noqa: ANN001 - gunicorn's Arbiter
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    if not _metrics_on or not path:
        return
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.remove(os.path.join(path, name))


def child_exit(server, worker) -> None:  # noqa: ANN001 - gunicorn's Arbiter and Worker
    if not _metrics_on or not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server) -> None:  # noqa: ANN001 - gunicorn's Arbiter
    if _own_dir:
        shutil.rmtree(_own_dir, ignore_errors=True)
