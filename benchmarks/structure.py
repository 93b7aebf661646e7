"""Measure the code's structure: the figures behind the before/after table in docs/architecture.md.

    .venv/bin/python benchmarks/structure.py            # this checkout
    .venv/bin/python benchmarks/structure.py --json     # the same, machine-readable

It reads source files as text and parses them with ``ast`` (nothing is imported or run), over
``shop_recs/`` and ``analytics/`` without migrations. Figures:

* lines per package (the second path level, e.g. ``shop_recs/serving``);
* the largest files and functions (a function's span is its first to its last line);
* import cycles between packages and between modules (strongly connected components of the import
  graph, Tarjan's algorithm over every import, top level or inside functions); the project wiring
  (``shop_recs/settings.py``, ``urls.py``, ``celery.py``, ...) is left out of the package graph;
* imports inside function bodies;
* raw SQL sites (``.execute``/``.executemany``, ``cursor.copy``, ``.raw(``, ``RawSQL``, ``.extra(``);
* module-level cache dicts (a module-level name bound to an empty dict, ``dict()``, ``OrderedDict()``
  or ``defaultdict()``: a map filled at run time).
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE_ROOTS = ("shop_recs", "analytics")
WIRING = "shop_recs"  # the project package's own modules: settings.py, urls.py, celery.py, wsgi.py, ...
RAW_SQL = re.compile(r"\.(execute|executemany)\(|\b(cursor|cur)\.copy\(|\.raw\(|RawSQL\(|\.extra\(")


def source_files(root: Path) -> list[Path]:
    files = []
    for top in SOURCE_ROOTS:
        for path in sorted((root / top).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            files.append(path)
    return files


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def package_of(module: str, is_package: bool = False) -> str:
    """The package a module belongs to, at most two levels deep (``shop_recs.serving``, ``analytics``)."""
    parts = module.split(".")
    if not is_package:
        parts = parts[:-1] or parts
    return ".".join(parts[:2])


def resolve_import(node: ast.ImportFrom, module: str, is_package: bool) -> str | None:
    if node.level == 0:
        return node.module
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:  # recursion depth is bounded by the module count (a few hundred)
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def measure(root: Path) -> dict:
    files = source_files(root)
    modules = {module_name(root, p): p for p in files}
    packages = {m: package_of(m, p.name == "__init__.py") for m, p in modules.items()}
    lines_by_package: dict[str, int] = defaultdict(int)
    file_sizes = []
    functions = []
    module_graph: dict[str, set[str]] = defaultdict(set)
    imports_in_functions = 0
    raw_sql_sites = []
    cache_dicts = []
    for module, path in modules.items():
        text = path.read_text(encoding="utf-8")
        n_lines = text.count("\n") + 1
        lines_by_package[packages[module]] += n_lines
        file_sizes.append((n_lines, str(path.relative_to(root))))
        tree = ast.parse(text)
        is_package = path.name == "__init__.py"
        for lineno, line in enumerate(text.splitlines(), 1):
            if RAW_SQL.search(line) and not line.lstrip().startswith("#"):
                raw_sql_sites.append(f"{path.relative_to(root)}:{lineno}")
        for node in tree.body:
            targets = []
            if isinstance(node, ast.Assign):
                targets, value = node.targets, node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                targets, value = [node.target], node.value
            for target in targets:
                if not isinstance(target, ast.Name):
                    continue
                # A module-level map that starts empty is filled at run time: a cache.
                is_map = (isinstance(value, ast.Dict) and not value.keys) or (
                    isinstance(value, ast.Call)
                    and not value.args
                    and not value.keywords
                    and getattr(value.func, "id", getattr(value.func, "attr", ""))
                    in {"dict", "OrderedDict", "defaultdict", "WeakValueDictionary"}
                )
                if is_map:
                    cache_dicts.append(f"{path.relative_to(root)}:{target.id}")
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                span = node.end_lineno - node.lineno + 1
                functions.append((span, f"{path.relative_to(root)}::{node.name}"))
                for inner in ast.walk(node):
                    if isinstance(inner, ast.Import | ast.ImportFrom):
                        imports_in_functions += 1
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = resolve_import(node, module, is_package)
                if base:
                    targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != module:
                    module_graph[module].add(target)
    package_graph: dict[str, set[str]] = defaultdict(set)
    for source, targets in module_graph.items():
        for target in targets:
            # The project wiring (settings, urls, celery, wsgi) names every app by design: it is the
            # top of the house, not a package in the layering, so its arrows make no package cycle.
            if WIRING in (packages[source], packages[target]):
                continue
            if packages[source] != packages[target]:
                package_graph[packages[source]].add(packages[target])
    file_sizes.sort(reverse=True)
    functions.sort(reverse=True)
    return {
        "lines_total": sum(lines_by_package.values()),
        "lines_by_package": dict(sorted(lines_by_package.items(), key=lambda kv: -kv[1])),
        "largest_files": file_sizes[:8],
        "files_over_600": sum(1 for n, _ in file_sizes if n > 600),
        "largest_functions": functions[:8],
        "functions_over_80": sum(1 for n, _ in functions if n > 80),
        "package_cycles": strongly_connected(package_graph),
        "module_cycles": strongly_connected(module_graph),
        "imports_inside_functions": imports_in_functions,
        "raw_sql_sites": raw_sql_sites,
        "cache_dicts": cache_dicts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = measure(args.root)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"lines (shop_recs + analytics, no migrations): {report['lines_total']:,}")
    for package, n in report["lines_by_package"].items():
        print(f"  {package:32} {n:6,}")
    print(f"largest files ({report['files_over_600']} over 600 lines):")
    for n, name in report["largest_files"]:
        print(f"  {n:6,}  {name}")
    print(f"largest functions ({report['functions_over_80']} over 80 lines):")
    for n, name in report["largest_functions"]:
        print(f"  {n:6,}  {name}")
    print(f"import cycles between packages: {len(report['package_cycles'])}")
    for cycle in report["package_cycles"]:
        print("  " + " <-> ".join(cycle))
    print(f"import cycles between modules: {len(report['module_cycles'])}")
    for cycle in report["module_cycles"]:
        print(f"  {len(cycle)} modules: " + ", ".join(cycle))
    print(f"imports inside functions: {report['imports_inside_functions']}")
    print(f"raw SQL sites: {len(report['raw_sql_sites'])}")
    print(f"module-level cache dicts: {len(report['cache_dicts'])}")
    for name in report["cache_dicts"]:
        print(f"  {name}")


if __name__ == "__main__":
    main()
