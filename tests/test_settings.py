"""The env-driven settings: defaults run embedded, bad values stop start-up with a clear message."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from shop_recs.settings import envbool, envint, envlist
from tests.conftest import ROOT


def test_envbool_accepts_common_spellings(monkeypatch):
    for raw, expected in [("1", True), ("yes", True), ("ON", True), ("0", False), ("false", False), ("", False)]:
        monkeypatch.setenv("X_FLAG", raw)
        assert envbool("X_FLAG", not expected) is expected
    monkeypatch.delenv("X_FLAG")
    assert envbool("X_FLAG", True) is True


def test_envbool_and_envint_reject_garbage_naming_the_variable(monkeypatch):
    monkeypatch.setenv("X_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="X_FLAG='maybe' is not a boolean"):
        envbool("X_FLAG", False)
    monkeypatch.setenv("X_NUM", "12a")
    with pytest.raises(ImproperlyConfigured, match="X_NUM='12a' is not an integer"):
        envint("X_NUM", 1)


def test_envlist_splits_and_strips(monkeypatch):
    monkeypatch.setenv("X_HOSTS", " a.example , b.example,,")
    assert envlist("X_HOSTS", []) == ["a.example", "b.example"]


def _settings_in_subprocess(**env) -> subprocess.CompletedProcess:
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='shop_recs.settings'; django.setup();"
        "from django.conf import settings as s;"
        "print(s.DATABASES['default']['ENGINE'], s.CELERY_TASK_ALWAYS_EAGER, s.CACHES['default']['BACKEND'])"
    )
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}}
    clean.update(env)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=clean, capture_output=True, text=True)


def test_defaults_are_embedded_and_urls_switch_to_services():
    embedded = _settings_in_subprocess()
    assert embedded.stdout.split() == [
        "django.db.backends.sqlite3",
        "True",
        "django.core.cache.backends.locmem.LocMemCache",
    ]
    services = _settings_in_subprocess(
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/x", REDIS_URL="redis://127.0.0.1:6379/0"
    )
    assert services.stdout.split() == [
        "django.db.backends.postgresql",
        "False",
        "django.core.cache.backends.redis.RedisCache",
    ]


def test_debug_off_requires_a_secret_key():
    result = _settings_in_subprocess(DEBUG="0", SECRET_KEY="")
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr
