"""The shape of the house, kept by tests: layering, sizes, and the places some things may live.

* The layering contract in ``pyproject.toml`` ([tool.importlinter]) passes: each package imports only
  the packages below it, ``shop_recs`` never imports ``analytics``, the engine imports nothing of ours.
  import-linter reads every import, including the ones inside functions.
* No source file grows past 600 lines, and no function past 80, unless a ``# Long on purpose:``
  comment right above it says why.
* Imports inside functions carry a comment saying why (on the line, or the line above), so a reader
  can tell a cycle-breaker or a lazy heavy import from an accident. ``AppConfig.ready()`` needs none:
  it is Django's documented place for imports that need the app registry.
* The historical ``recommend`` app holds migrations only.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [
    p for top in ("shop_recs", "analytics") for p in sorted((ROOT / top).rglob("*.py")) if "migrations" not in p.parts
]
MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 80
LONG_MARK = "# Long on purpose:"


def test_the_layering_contract_holds():
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "BROKEN" not in result.stdout


def test_the_layering_contract_names_every_package():
    """A new package must take its place in the layers (or it would escape the contract)."""
    text = (ROOT / "pyproject.toml").read_text()
    packages = {
        f"{top}.{p.name}" if top != "analytics" else "analytics"
        for top in ("shop_recs", "analytics")
        for p in (ROOT / top).iterdir()
        if p.is_dir() and (p / "__init__.py").exists()
    }
    packages -= {"shop_recs.recsys", "shop_recs.recommend"}  # their own contracts below the layers
    missing = sorted(name for name in packages if f'"{name}' not in text and f"| {name}" not in text)
    assert not missing, f"add these packages to [tool.importlinter] layers: {missing}"


def _functions(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def _marked_long(lines: list[str], node: ast.AST) -> bool:
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    above = lines[max(0, first - 4) : first - 1]
    return any(LONG_MARK in line for line in above)


def test_no_file_or_function_is_too_long_without_a_reason():
    too_long = []
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        rel = path.relative_to(ROOT)
        if len(lines) > MAX_FILE_LINES and LONG_MARK not in "\n".join(lines[:15]):
            too_long.append(f"{rel}: {len(lines)} lines")
        for node in _functions(ast.parse(text)):
            span = node.end_lineno - node.lineno + 1
            if span > MAX_FUNCTION_LINES and not _marked_long(lines, node):
                too_long.append(f"{rel}:{node.lineno} {node.name}: {span} lines")
    assert not too_long, "split these, or say why above them with '# Long on purpose: ...':\n" + "\n".join(too_long)


def test_imports_inside_functions_say_why():
    silent = []
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        for function in _functions(ast.parse(text)):
            if function.name == "ready":
                continue  # AppConfig.ready(): Django's documented place for imports that need loaded apps
            for node in ast.walk(function):
                if not isinstance(node, ast.Import | ast.ImportFrom):
                    continue
                here = lines[node.lineno - 1]
                above = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
                # A run of imports shares the comment above its first line.
                k = node.lineno - 2
                while k >= 0 and (not lines[k].strip() or lines[k].strip().startswith(("from ", "import "))):
                    k -= 1
                above_run = lines[k].strip() if k >= 0 else ""
                if "#" in here or above.startswith("#") or above_run.startswith("#"):
                    continue
                silent.append(f"{path.relative_to(ROOT)}:{node.lineno} {here.strip()}")
    assert not silent, "say why these imports are inside a function (a comment on or above the line):\n" + "\n".join(
        silent
    )


def test_the_recommend_app_holds_migration_history_only():
    app = ROOT / "shop_recs" / "recommend"
    files = sorted(str(p.relative_to(app)) for p in app.rglob("*.py") if "migrations" not in p.parts)
    assert files == ["__init__.py", "apps.py", "models.py"]
    models_source = (app / "models.py").read_text()
    assert "class " not in models_source
