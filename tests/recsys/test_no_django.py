"""The engine must never import Django (it runs in workers and benchmarks without settings)."""

from __future__ import annotations

import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import shop_recs.recsys

PACKAGE_DIR = Path(shop_recs.recsys.__file__).parent
ROOT = PACKAGE_DIR.parent.parent


def _import_all_in_subprocess(stub_parent: bool) -> str:
    modules = [f"shop_recs.recsys.{m.name}" for m in pkgutil.iter_modules([str(PACKAGE_DIR)])]
    assert "shop_recs.recsys.registry" in modules
    # With stub_parent, shop_recs/__init__.py (which loads the Celery app) is replaced by an empty
    # package, so only the engine's own imports are checked.
    stub = (
        "import types\n"
        f"pkg = types.ModuleType('shop_recs'); pkg.__path__ = [{str(PACKAGE_DIR.parent)!r}]\n"
        "sys.modules['shop_recs'] = pkg\n"
    )
    code = (
        "import importlib, sys\n" + (stub if stub_parent else "") + f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'))\n"
        "print(','.join(bad))\n"
    )
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, check=True)
    return out.stdout.strip()


def test_engine_modules_import_no_django() -> None:
    assert _import_all_in_subprocess(stub_parent=True) == ""


def test_importing_every_module_leaves_django_unloaded() -> None:
    # Through the real parent package, as a worker or a benchmark would import it.
    loaded = _import_all_in_subprocess(stub_parent=False)
    assert loaded == "", f"django modules were imported (via shop_recs/__init__.py?): {loaded}"


def test_no_django_import_statement_in_package() -> None:
    pattern = re.compile(r"^\s*(import\s+django|from\s+django)\b", re.MULTILINE)
    offenders = [str(p) for p in PACKAGE_DIR.rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []
