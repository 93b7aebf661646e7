"""Every setting is declared once in shop_recs/settings.py, read as ``settings.X``, and documented.

Scans the production source (shop_recs/ and analytics/) rather than trusting a list: a new
``settings.FOO`` read without a declaration, a ``getattr(settings, "FOO", default)`` or an
``os.environ`` read outside start-up code fails here.
"""

from __future__ import annotations

import ast
import importlib
from functools import cache

import pytest
from django.core.exceptions import ImproperlyConfigured

from tests.conftest import ROOT

PACKAGES = ("shop_recs", "analytics")
SETTINGS_FILE = ROOT / "shop_recs" / "settings.py"
#: Start-up code that may touch the environment (settings itself; the entry points set
#: DJANGO_SETTINGS_MODULE).
ENVIRON_ALLOWED = {"shop_recs/settings.py", "shop_recs/celery.py", "shop_recs/wsgi.py", "shop_recs/asgi.py"}
ENV_HELPERS = {"envbool", "envint", "envfloat", "envstr", "envlist"}


@cache
def _sources() -> tuple[tuple[str, ast.Module], ...]:
    out = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            out.append((path.relative_to(ROOT).as_posix(), ast.parse(path.read_text(encoding="utf-8"))))
    return tuple(out)


def _is_settings(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and node.id == "settings"


def _setting_reads() -> dict[str, set[str]]:
    """``{NAME: {files}}`` for every ``settings.NAME`` (and legacy ``setting("NAME", ...)``) read."""
    reads: dict[str, set[str]] = {}
    for rel, tree in _sources():
        if rel == "shop_recs/settings.py":
            continue
        for node in ast.walk(tree):
            name = None
            if isinstance(node, ast.Attribute) and _is_settings(node.value) and node.attr.isupper():
                name = node.attr
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args:
                first = node.args[0]
                if node.func.id == "setting" and isinstance(first, ast.Constant) and isinstance(first.value, str):
                    name = first.value
                elif node.func.id == "getattr" and _is_settings(first) and len(node.args) > 1:
                    key = node.args[1]
                    name = key.value if isinstance(key, ast.Constant) and isinstance(key.value, str) else None
            if name:
                reads.setdefault(name, set()).add(rel)
    return reads


def test_the_scan_finds_reads():
    reads = _setting_reads()
    # A broken scan (wrong root, parse of nothing) would make every other check here vacuous.
    assert {"EVENT_BATCH_MAX", "MODEL_DIR", "API_KEY_CACHE_SECONDS"} <= set(reads)


def test_every_setting_read_is_declared_in_settings_py():
    module = importlib.import_module("shop_recs.settings")
    missing = {name: sorted(files) for name, files in _setting_reads().items() if not hasattr(module, name)}
    assert not missing, f"read but not declared in shop_recs/settings.py: {missing}"


def test_no_getattr_with_a_default_on_settings():
    offenders = []
    for rel, tree in _sources():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "getattr"
                and len(node.args) == 3
                and _is_settings(node.args[0])
            ):
                offenders.append(f"{rel}:{node.lineno}")
    assert not offenders, f"read settings.X instead (declare it in shop_recs/settings.py): {offenders}"


def test_no_production_module_reads_the_environment():
    offenders = []
    for rel, tree in _sources():
        if rel in ENVIRON_ALLOWED:
            continue
        for node in ast.walk(tree):
            hit = (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "os"
                and node.attr in {"environ", "getenv", "environb"}
            ) or (
                isinstance(node, ast.ImportFrom)
                and node.module == "os"
                and any(alias.name in {"environ", "getenv"} for alias in node.names)
            )
            if hit:
                offenders.append(f"{rel}:{node.lineno}")
    assert not offenders, f"declare a setting in shop_recs/settings.py instead of reading os.environ: {offenders}"


def _env_variables() -> set[str]:
    """The variable names passed to the env helpers anywhere in shop_recs/settings.py."""
    tree = ast.parse(SETTINGS_FILE.read_text(encoding="utf-8"))
    return {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ENV_HELPERS
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }


def test_docs_settings_lists_every_environment_variable():
    variables = _env_variables()
    assert {"DEBUG", "DATABASE_URL", "SHOP_RECS_TEST_TRAINING_DELAY"} <= variables
    doc = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    undocumented = sorted(v for v in variables if f"`{v}`" not in doc)
    assert not undocumented, f"add these to the table in docs/settings.md: {undocumented}"


def test_docs_settings_names_every_setting_read():
    doc = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    undocumented = sorted(name for name in _setting_reads() if f"`{name}`" not in doc and name != "BASE_DIR")
    assert not undocumented, f"add these to docs/settings.md: {undocumented}"


@pytest.mark.parametrize("helper", ["envint", "envfloat", "envbool"])
def test_a_malformed_value_is_refused(monkeypatch, helper):
    from shop_recs import settings as project_settings

    monkeypatch.setenv("SHOP_RECS_TEST_MALFORMED", "soon")
    with pytest.raises(ImproperlyConfigured, match="SHOP_RECS_TEST_MALFORMED"):
        getattr(project_settings, helper)("SHOP_RECS_TEST_MALFORMED", 1)


def test_envfloat_parses_and_defaults(monkeypatch):
    from shop_recs.settings import envfloat

    monkeypatch.delenv("SHOP_RECS_TEST_FLOAT", raising=False)
    assert envfloat("SHOP_RECS_TEST_FLOAT", 2.5) == 2.5
    monkeypatch.setenv("SHOP_RECS_TEST_FLOAT", "0.25")
    assert envfloat("SHOP_RECS_TEST_FLOAT", 2.5) == 0.25
