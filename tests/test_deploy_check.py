"""The documented production environment passes Django's deployment checklist; DEBUG is off by default.

The environment is read from docs/operations.md ("The production environment"), so the docs and the
settings cannot drift apart: a setting added there that breaks `check --deploy`, or a security setting
that stops reading its variable, fails here. Each subprocess starts from an empty environment (only
PATH and HOME), so nothing of the test environment (pyproject's pytest-env block) leaks in.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

OPERATIONS = ROOT / "docs" / "operations.md"
#: Services the deployment check does not contact and this machine may not have.
NOT_NEEDED_FOR_THE_CHECK = {"REDIS_URL", "CELERY_BROKER_URL", "SENTRY_DSN"}


def documented_production_env() -> dict[str, str]:
    """The ``KEY=value`` lines of the first ``sh`` block under "## The production environment"."""
    text = OPERATIONS.read_text(encoding="utf-8")
    section = text.split("## The production environment", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "docs/operations.md: the production environment block is missing"
    env = {}
    for line in block.group(1).splitlines():
        if line.strip():
            name, sep, value = line.partition("=")
            assert sep and re.fullmatch(r"[A-Z][A-Z0-9_]*", name), f"not NAME=value: {line!r}"
            env[name] = value
    return env


def production_env(tmp_path: Path, **overrides: str | None) -> dict[str, str]:
    """The documented block with its placeholders filled in for this machine."""
    env = documented_production_env()
    for name in NOT_NEEDED_FOR_THE_CHECK:
        env.pop(name, None)
    env["SECRET_KEY"] = secrets.token_urlsafe(50)
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'deploy.sqlite3'}"
    env["SHOP_RECS_VAR_DIR"] = str(tmp_path / "var")
    leftover = {k: v for k, v in env.items() if "<" in v}
    assert not leftover, f"placeholders this test does not fill: {leftover}"
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **env}


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def settings_values(env: dict[str, str], *names: str) -> subprocess.CompletedProcess:
    # The settings module alone (no django.setup()): what it computes from the environment.
    code = (
        "import importlib; settings = importlib.import_module('shop_recs.settings')\n"
        f"for name in {list(names)!r}: print(name, repr(eval(name, {{}}, vars(settings))))\n"
    )
    return run(env, "-c", code)


def parsed(result: subprocess.CompletedProcess) -> dict[str, str]:
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(line.split(" ", 1) for line in result.stdout.splitlines())


def test_the_documented_block_sets_the_security_settings():
    env = documented_production_env()
    assert env["DEBUG"] == "0"
    for name in (
        "SECRET_KEY",
        "ALLOWED_HOSTS",
        "CSRF_TRUSTED_ORIGINS",
        "SECURE_PROXY_SSL_HEADER",
        "SECURE_SSL_REDIRECT",
        "SECURE_HSTS_SECONDS",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS",
        "SECURE_HSTS_PRELOAD",
        "LOG_FORMAT",
    ):
        assert env.get(name), f"{name} is missing from the production environment in docs/operations.md"


def test_check_deploy_passes_with_the_documented_production_environment(tmp_path):
    result = run(production_env(tmp_path), "manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNINGS" not in result.stdout + result.stderr
    assert "security.W" not in result.stdout + result.stderr


def test_check_deploy_warns_without_the_https_settings(tmp_path):
    """The test above proves something: with the HTTPS variables removed the same check fails."""
    env = production_env(tmp_path, SECURE_SSL_REDIRECT=None, SECURE_HSTS_SECONDS=None)
    result = run(env, "manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0
    assert "security.W004" in result.stderr  # HSTS
    assert "security.W008" in result.stderr  # SSL redirect


def test_the_production_environment_gives_the_production_settings(tmp_path):
    values = parsed(
        settings_values(
            production_env(tmp_path),
            "DEBUG",
            "SECURE_PROXY_SSL_HEADER",
            "SECURE_SSL_REDIRECT",
            "SECURE_HSTS_SECONDS",
            "SESSION_COOKIE_SECURE",
            "CSRF_TRUSTED_ORIGINS",
            "STORAGES['staticfiles']['BACKEND']",
            "WHITENOISE_USE_FINDERS",
            "LOGGING['handlers']['console']['formatter']",
        )
    )
    assert values == {
        "DEBUG": "False",
        "SECURE_PROXY_SSL_HEADER": "('HTTP_X_FORWARDED_PROTO', 'https')",
        "SECURE_SSL_REDIRECT": "True",
        "SECURE_HSTS_SECONDS": "31536000",
        "SESSION_COOKIE_SECURE": "True",
        "CSRF_TRUSTED_ORIGINS": "['https://shop.example.com']",
        "STORAGES['staticfiles']['BACKEND']": "'whitenoise.storage.CompressedManifestStaticFilesStorage'",
        "WHITENOISE_USE_FINDERS": "False",
        "LOGGING['handlers']['console']['formatter']": "'json'",
    }


def test_debug_is_off_when_the_environment_does_not_set_it(tmp_path):
    values = parsed(settings_values(production_env(tmp_path, DEBUG=None), "DEBUG", "SESSION_COOKIE_SECURE"))
    assert values == {"DEBUG": "False", "SESSION_COOKIE_SECURE": "True"}


def test_without_debug_and_without_a_secret_key_start_up_is_refused(tmp_path):
    result = settings_values(production_env(tmp_path, DEBUG=None, SECRET_KEY=None), "DEBUG")
    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_debug_on_runs_without_a_secret_key(tmp_path):
    """The demo: `./dev demo` exports DEBUG=1 and sets no key."""
    values = parsed(settings_values(production_env(tmp_path, DEBUG="1", SECRET_KEY=None), "DEBUG"))
    assert values == {"DEBUG": "True"}


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SECURE_PROXY_SSL_HEADER", "X-Forwarded-Proto", "SECURE_PROXY_SSL_HEADER='X-Forwarded-Proto' must name"),
        ("SECURE_HSTS_SECONDS", "-5", "SECURE_HSTS_SECONDS=-5 must be 0"),
        ("SECURE_SSL_REDIRECT", "sometimes", "SECURE_SSL_REDIRECT='sometimes' is not a boolean"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT='xml' must be 'plain' or 'json'"),
        ("SENTRY_SAMPLE_RATE", "2", "SENTRY_SAMPLE_RATE=2.0 must be between 0 and 1"),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(tmp_path, name, value, message):
    result = settings_values(production_env(tmp_path, **{name: value}), "DEBUG")
    assert result.returncode != 0
    assert message in result.stderr


def test_a_proxy_header_with_its_own_value(tmp_path):
    env = production_env(tmp_path, SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_SSL=on")
    assert parsed(settings_values(env, "SECURE_PROXY_SSL_HEADER")) == {
        "SECURE_PROXY_SSL_HEADER": "('HTTP_X_FORWARDED_SSL', 'on')"
    }


@pytest.mark.django_db
def test_probes_stay_on_plain_http_while_pages_redirect_to_https(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    for probe in ("/healthz", "/readyz"):
        assert client.get(probe).status_code in {200, 503}, probe  # answered, not redirected
    login = client.get("/accounts/login/")
    assert login.status_code == 301
    assert login["Location"] == "https://testserver/accounts/login/"
    # Behind the proxy, a request that arrived over HTTPS is served.
    assert client.get("/accounts/login/", HTTP_X_FORWARDED_PROTO="https").status_code == 200
