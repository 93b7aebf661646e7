"""Raw SQL lives only in allow-listed modules.

The rule (docs): every store-owned query goes through scoping (``StoreOwned.objects`` under
``store_scope``), or through an allow-listed raw-SQL module (``sql.py`` per app) whose functions take
``store_id`` explicitly. This test finds every raw SQL site in ``shop_recs/`` and ``analytics/`` by
parsing the source (``ast``: comments and strings never match) and fails on any site outside
:data:`ALLOWED`, so a new one is a review decision, not an accident.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("shop_recs", "analytics")

#: Modules that may hold raw SQL (paths relative to the repository root).
ALLOWED: frozenset[str] = frozenset(
    {
        # The raw-SQL modules: functions taking store_id explicitly (or, for the API key lookup that
        # finds the store and the platform's generic log writer, documented why not).
        "analytics/sql.py",
        "shop_recs/api/sql.py",
        "shop_recs/activity/sql.py",
        "shop_recs/ads/sql.py",
        "shop_recs/platform/sql.py",
        "shop_recs/serving/sql.py",
        "shop_recs/search/sql.py",
        "shop_recs/training/sql.py",
    }
)

#: The start of an SQL statement in a string: text run elsewhere (the log buffer runs the INSERTs it is
#: given) belongs in sql.py as much as an ``execute`` call does.
_SQL_TEXT = re.compile(r"\s*(INSERT INTO \S+ \(|SELECT \S.* FROM\b|UPDATE \S+ SET |DELETE FROM \S|COPY \S+ )", re.S)
_SQL_METHODS = {"execute", "executemany", "raw", "extra"}
_CURSOR_NAMES = {"cursor", "cur", "raw_cursor", "c"}
#: Redis pipelines (rate limiter, queue-depth metrics) also have ``.execute()``; it runs no SQL.
_REDIS_PIPELINES = {"pipe", "pipeline"}


def _receiver_name(node: ast.expr) -> str:
    """The last name of a call's receiver: ``connection`` for ``connection.cursor``, ``x`` for ``a.x``."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript):  # connections["default"]
        return _receiver_name(node.value)
    return ""


def raw_sql_sites(source: str, filename: str = "<source>") -> list[tuple[int, str]]:
    """``(line, what)`` for each raw SQL call in ``source``."""
    sites: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id == "RawSQL":
            sites.append((node.lineno, "RawSQL("))
        elif isinstance(func, ast.Attribute) and func.attr == "RawSQL":
            sites.append((node.lineno, "RawSQL("))
        elif isinstance(func, ast.Attribute):
            receiver = _receiver_name(func.value)
            if func.attr == "execute" and receiver in _REDIS_PIPELINES:
                continue
            if func.attr in _SQL_METHODS:
                sites.append((node.lineno, f".{func.attr}("))
            elif func.attr == "copy" and receiver in _CURSOR_NAMES:
                sites.append((node.lineno, f"{receiver}.copy("))
            elif func.attr == "cursor" and receiver in {"connection", "connections"}:
                sites.append((node.lineno, f"{receiver}.cursor("))
    return sorted(sites)


def scan(root: Path = ROOT, packages: tuple[str, ...] = SCANNED) -> dict[str, list[tuple[int, str]]]:
    """Every module under ``packages`` with raw SQL sites, by path relative to ``root``."""
    found: dict[str, list[tuple[int, str]]] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue  # RunSQL in migrations is schema, not queries
            sites = raw_sql_sites(path.read_text(encoding="utf-8"), str(path))
            if sites:
                found[path.relative_to(root).as_posix()] = sites
    return found


def violations(found: dict[str, list[tuple[int, str]]], allowed: frozenset[str] = ALLOWED) -> list[str]:
    return [f"{path}:{line}: {what}" for path, sites in found.items() if path not in allowed for line, what in sites]


def test_raw_sql_only_in_allowed_modules():
    bad = violations(scan())
    assert not bad, "raw SQL outside an allow-listed sql.py module:\n" + "\n".join(bad)


def test_a_new_site_is_caught(tmp_path):
    package = tmp_path / "shop_recs" / "newapp"
    package.mkdir(parents=True)
    (package / "sql.py").write_text("from django.db import connection\n\nconnection.cursor()\n")
    (package / "views.py").write_text(
        "from django.db import connection, connections\n"
        "from django.db.models.expressions import RawSQL\n"
        "# cursor.execute('in a comment is fine')\n"
        "TEXT = 'cur.execute(\"in a string is fine\")'\n"
        "def f(qs):\n"
        "    with connection.cursor() as cur:\n"
        "        cur.execute('SELECT 1')\n"
        "        cur.executemany('SELECT %s', [[1]])\n"
        "        with cur.copy('COPY t FROM STDIN') as c:\n"
        "            pass\n"
        "    connections['default'].cursor()\n"
        "    qs.raw('SELECT 1')\n"
        "    qs.extra(where=['1=1'])\n"
        "    return qs.annotate(x=RawSQL('1', []))\n"
    )
    found = scan(tmp_path, ("shop_recs",))
    assert found["shop_recs/newapp/views.py"] == [
        (6, "connection.cursor("),
        (7, ".execute("),
        (8, ".executemany("),
        (9, "cur.copy("),
        (11, "connections.cursor("),
        (12, ".raw("),
        (13, ".extra("),
        (14, "RawSQL("),
    ]
    allowed = frozenset({"shop_recs/newapp/sql.py"})
    bad = violations(found, allowed)
    assert len(bad) == 8 and all(line.startswith("shop_recs/newapp/views.py:") for line in bad)
    assert violations({"shop_recs/newapp/sql.py": found["shop_recs/newapp/sql.py"]}, allowed) == []


def sql_text_sites(source: str, filename: str = "<source>") -> list[int]:
    """Lines of string constants (f-string parts included) that start an SQL statement."""
    return sorted(
        node.lineno
        for node in ast.walk(ast.parse(source, filename=filename))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and _SQL_TEXT.match(node.value)
    )


def test_sql_text_only_in_allowed_modules():
    outside = []
    for package in SCANNED:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if "migrations" in path.parts or rel in ALLOWED:
                continue
            outside += [f"{rel}:{line}" for line in sql_text_sites(path.read_text(encoding="utf-8"), rel)]
    assert not outside, "SQL statement text outside an allow-listed sql.py module:\n" + "\n".join(outside)


def test_sql_text_is_recognised():
    source = 'A = "INSERT INTO t (a) VALUES (%s)"\nB = f"SELECT id FROM {t} WHERE x"\nC = "Select a product"\n'
    assert sql_text_sites(source) == [1, 2]
