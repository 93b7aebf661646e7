"""Optional Sentry: with a DSN an unhandled API error is reported (to a fake Sentry on 127.0.0.1, no
network); without one nothing is initialised."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sentry_sdk

from shop_recs.platform.sentry import init_sentry
from tests.conftest import ROOT


class FakeSentry:
    """A local HTTP server that records the envelopes posted to ``/api/<project>/envelope/``."""

    def __init__(self) -> None:
        self.envelopes: list[bytes] = []
        received = self.envelopes

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                encoding = self.headers.get("Content-Encoding", "")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                received.append(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def dsn(self) -> str:
        return f"http://public@127.0.0.1:{self.server.server_address[1]}/1"

    def events(self) -> list[dict]:
        """The ``event`` items of every envelope (an envelope: header line, then item header + payload)."""
        out = []
        for raw in self.envelopes:
            parts = raw.split(b"\n")
            i = 1
            while i + 1 < len(parts):
                header = json.loads(parts[i])
                if header.get("type") == "event":
                    out.append(json.loads(parts[i + 1]))
                i += 2
        return out


@pytest.fixture
def fake_sentry():
    fake = FakeSentry()
    fake.thread.start()
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()


@pytest.fixture
def sentry_on(fake_sentry):
    """Sentry initialised against the fake for one test, then switched off again for the rest of the run."""
    init_sentry(fake_sentry.dsn, environment="test", sample_rate=1.0, traces_sample_rate=0.0)
    try:
        yield fake_sentry
    finally:
        sentry_sdk.get_client().close(timeout=5)  # flushes, then stops the transport
        sentry_sdk.get_global_scope().set_client(None)  # back to the non-recording client
        assert not sentry_sdk.get_client().is_active()


@pytest.mark.django_db
def test_an_unhandled_api_error_is_reported(sentry_on, api_client, api_key, monkeypatch):
    from shop_recs.serving import api_views

    def explode(*args, **kwargs):
        raise RuntimeError("boom from the catalog")

    monkeypatch.setattr(api_views, "catalog_snapshot", explode)
    response = api_client.get("/api/v1/popular", HTTP_X_REQUEST_ID="req-sentry-1")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "server_error"  # the client still gets the JSON 500
    sentry_sdk.flush(timeout=10)

    events = [e for e in sentry_on.events() if any(v.get("type") == "RuntimeError" for v in e["exception"]["values"])]
    assert events, f"no RuntimeError event among {len(sentry_on.envelopes)} envelope(s)"
    event = events[0]
    exception = next(v for v in event["exception"]["values"] if v["type"] == "RuntimeError")
    assert exception["value"] == "boom from the catalog"
    assert event["tags"]["request_id"] == "req-sentry-1"
    assert event["environment"] == "test"
    # send_default_pii=False: no API key, cookie or client address leaves the process.
    raw = b"".join(sentry_on.envelopes).decode("utf-8", "replace")
    assert api_key not in raw
    assert "127.0.0.1" not in json.dumps(event.get("user", {}))


def test_init_sentry_does_nothing_without_a_dsn():
    assert init_sentry("", environment="x", sample_rate=1.0, traces_sample_rate=0.0) is None


def _sentry_state(**env: str) -> list[str]:
    code = (
        "import importlib, sentry_sdk; importlib.import_module('shop_recs.settings')\n"
        "client = sentry_sdk.get_client()\n"
        "print(client.is_active())\n"
        "print(sorted(getattr(client, 'integrations', {}) or {}))\n"
        "print(client.options.get('send_default_pii') if client.is_active() else None)\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SENTRY_")}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.split("\n")[:3]


def test_without_a_dsn_nothing_is_initialised():
    active, integrations, _pii = _sentry_state()
    assert active == "False"
    assert integrations == "[]"


def test_with_a_dsn_the_settings_initialise_django_and_celery_reporting(fake_sentry):
    active, integrations, pii = _sentry_state(SENTRY_DSN=fake_sentry.dsn)
    assert active == "True"
    assert "'django'" in integrations and "'celery'" in integrations and "'logging'" in integrations
    assert pii == "False"
