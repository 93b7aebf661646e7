"""Every unscoped query names its rows, or says why it spans stores.

Store-owned models refuse queries outside ``store_scope`` (django-scopes); ``Model.all_stores`` and
``unscoped()`` step around that. They are allowed where the query is keyed by something that already
pins the store (a row id the caller holds, ``store=``/``store_id=``, instances passed to
``bulk_create``/``bulk_update``) and for maintenance that spans
every store on purpose, which must say so in a comment (``# all stores: <why>``) on the statement or
the line above. This test reads the code and lists any other use.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Keyword arguments (in the same statement) that pin the rows to one store or to known rows.
_KEYED = re.compile(r"\b(store|store_id|pk|id|job_id|run_id|store_id__in|pk__in|id__in)\s*=")
_SAYS_WHY = "# all stores:"


def _unscoped_nodes(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "all_stores":
            yield node
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "unscoped":
            yield node


def unkeyed_unscoped_sites(source: str) -> list[int]:
    """Lines of unscoped queries that neither name their rows nor say why they span stores."""
    tree = ast.parse(source)
    lines = source.splitlines()
    statements = [n for n in ast.walk(tree) if isinstance(n, ast.stmt)]
    bad = []
    for node in _unscoped_nodes(tree):
        # The innermost statement holding the access.
        holder = min(
            (s for s in statements if s.lineno <= node.lineno <= s.end_lineno and not isinstance(s, ast.FunctionDef)),
            key=lambda s: s.end_lineno - s.lineno,
        )
        text = "\n".join(lines[holder.lineno - 1 : holder.end_lineno])
        above = lines[holder.lineno - 2] if holder.lineno > 1 else ""
        # bulk_create/bulk_update write the given instances, each carrying its store.
        bulk = "all_stores.bulk_create(" in text or "all_stores.bulk_update(" in text
        if bulk or _KEYED.search(text) or _SAYS_WHY in text or _SAYS_WHY in above:
            continue
        bad.append(node.lineno)
    return sorted(set(bad))


def test_unscoped_queries_are_keyed_or_say_why():
    found = []
    for top in ("shop_recs", "analytics"):
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if "migrations" in path.parts or rel == "shop_recs/stores/scoping.py":
                continue
            found += [f"{rel}:{line}" for line in unkeyed_unscoped_sites(path.read_text(encoding="utf-8"))]
    assert not found, "unscoped queries that span stores without saying why ('# all stores: ...'):\n" + "\n".join(found)


def test_the_scanner_tells_keyed_from_unkeyed():
    source = (
        "def f(store, run):\n"
        "    a = Model.all_stores.filter(store=store).count()\n"
        "    b = Model.all_stores.filter(pk=run.pk).update(x=1)\n"
        "    c = Model.all_stores.count()\n"
        "    # all stores: the nightly purge applies to every store\n"
        "    d = Model.all_stores.filter(created_at__lt=0).delete()\n"
        "    with unscoped():\n"
        "        e = 1\n"
    )
    assert unkeyed_unscoped_sites(source) == [4, 7]
