"""The service probes test the service the settings name, and say so by skipping or failing."""

from __future__ import annotations

import socket

import pytest

from tests.conftest import require_redis


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_require_redis_probes_the_redis_url_names(monkeypatch):
    """Not a fixed 127.0.0.1:6379: a REDIS_URL on a port where nothing listens is unreachable."""
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{_closed_port()}/0")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not reachable"):
        require_redis()


def test_require_redis_fails_under_ci(monkeypatch):
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{_closed_port()}/0")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="not reachable"):
        require_redis()
