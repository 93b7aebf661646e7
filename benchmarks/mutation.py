# Long on purpose: one self-contained script (copy, configure, run mutmut, report; SQLite or PostgreSQL).
"""Mutation testing (mutmut 3) of the modules whose bugs users feel first, each with its own tests.

    .venv/bin/python benchmarks/mutation.py                              # every target, every mutant
    .venv/bin/python benchmarks/mutation.py --only metrics --only stats  # some targets (repeat --only)
    .venv/bin/python benchmarks/mutation.py --max-mutants 60             # an evenly spaced sample per target
    .venv/bin/python benchmarks/mutation.py --list                       # the targets and their tests
    .venv/bin/python benchmarks/mutation.py --only stats --json /tmp/mut.json --keep
    .venv/bin/python benchmarks/mutation.py --only ads_services --max-mutants 60 --no-migrations  # DB-heavy

A benchmark, not part of CI. For each target it

1. copies the checkout (without ``.venv``, ``.git``, ``var/`` and caches) to a temporary directory, so
   this checkout is never mutated (mutmut writes ``mutants/`` inside the copy);
2. runs the target's test selection once on the unmutated copy; a test that already fails there (someone
   is editing it) is passed to pytest as ``--deselect`` and reported, since mutmut needs a green run;
3. rewrites the copy's ``[tool.mutmut]`` table (``only_mutate`` = the module, the test selection,
   the deselects) and runs ``mutmut run`` there; with ``--max-mutants N``, or for targets limited to
   some functions (ingestion validation, product cleaning), it names the mutants to run;
4. reads mutmut's results in the copy and prints a table (module, mutants, killed, survived, timeout,
   other, score) and every surviving mutant as ``file:line`` with its diff.

Score = killed / (mutants - skipped); "other" counts "no tests" (no selected test reaches the mutated
function: counted as not killed) and "suspicious"/"segfault". Timeouts are not counted as killed.
The figures and the classification of the survivors are in docs/benchmarks.md ("Mutation testing").
mutmut runs with ``--max-children 2`` by default (the development VM has two cores).

**PostgreSQL mode.** By default every run is on SQLite with no services (``DATABASE_URL``, ``REDIS_URL``,
``CELERY_BROKER_URL`` and ``CI`` are removed from the environment), so code that only runs on
PostgreSQL (the one-statement ad charge of ``shop_recs/ads/sql.py``) counts as "no tests"::

    .venv/bin/python benchmarks/mutation.py --only ads_sql --no-migrations \
        --postgres postgres://postgres@127.0.0.1:5432/shop_recs_mut

``--postgres URL`` gives the unmutated check, mutmut's own runs and every mutant's run
``DATABASE_URL=URL`` and ``CI=true`` (a PostgreSQL test that cannot reach the server fails instead of
skipping, so a green run really took the PostgreSQL path). mutmut runs up to ``--max-children``
mutants at once, each in its own pytest session: the driver writes a small pytest plugin
(``_mutation_test_db.py``) into the copy with which each session takes a free slot (an exclusive lock
on a file) and its own test database ``test_<db>_mut<slot>`` (through pytest-django's
``TOX_PARALLEL_ENV`` suffix), so parallel children never share a database. A slot's database is kept
from one session to the next (``--reuse-db``: a mutant's run would otherwise spend about as long
creating and dropping it as running the tests; the schema comes from the models, which no target
mutates); a child killed by mutmut's timeout leaves a mark, and the next session in its slot builds
the database anew. The driver drops every ``test_<db>_mut*`` database before and after each target,
so two runs must not share one URL at the same time.
``--redis URL`` adds ``REDIS_URL``/``CELERY_BROKER_URL``; parallel children would share that Redis
database while their test databases hand out the same ids (store 1 in each), so ``--redis`` runs one
mutant at a time (``--max-children 1``). The ads selections need no Redis.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


@dataclass
class Target:
    name: str
    path: str
    tests: list[str]
    # Only mutants of these functions (``func`` or ``Class.method``); empty = the whole module.
    functions: list[str] = field(default_factory=list)
    # mutmut forks each mutant's worker from its main process, which has run the tests. The serving and
    # ingestion tests leave threads behind (serving/live_activity.py, platform/logbuffer.py), and a
    # worker forked while one holds a lock hangs until mutmut's timeout: those targets use mutmut's
    # "forkserver" isolation, which forks from a clean process that only collected the tests.
    isolation: str = "fork"


FS = "forkserver"
#: The ads modules' test selection: serving, tracking under threads, budgets and caps, money, pacing.
ADS_TESTS = (
    "tests/ads/test_serving.py",
    "tests/ads/test_tracking.py",
    "tests/ads/test_budget_and_caps.py",
    "tests/ads/test_money.py",
    "tests/ads/test_pacing.py",
    "tests/ads/test_services_units.py",
    "tests/ads/test_services_survivors.py",
    # The visitor cache and the affinity memo of services.visitor / predicted_affinities / record_impression.
    "tests/ads/test_visitor_cache.py",
    # Deleting a segment pauses the campaigns aimed at it (services.pause_campaigns_losing_segment).
    "tests/analytics/test_segment_identity.py",
)
TARGETS = [
    Target(
        "metrics", "shop_recs/recsys/metrics.py", ["tests/recsys/test_metrics.py", "tests/recsys/test_metrics_edges.py"]
    ),
    Target(
        "stats",
        "analytics/experiments/stats.py",
        ["tests/experiments/test_stats.py", "tests/experiments/test_stats_edges.py"],
    ),
    Target("rules_builder", "analytics/rules_builder.py", ["tests/analytics/test_rules*.py"], isolation=FS),
    Target(
        "serving_rules",
        "shop_recs/serving/rules.py",
        [
            "tests/serving/test_rules_vectorised.py",
            "tests/serving/test_rules_edges.py",
            "tests/serving/test_outage_caches.py",
            "tests/serving/test_rules_survivors.py",
        ],
        isolation=FS,
    ),
    Target(
        # The rules snapshot (load_rules, rules_from_row, the per-store cache and its outage fallback),
        # moved out of serving/rules.py by the placements work.
        "rules_snapshot",
        "shop_recs/serving/rules_snapshot.py",
        [
            "tests/serving/test_outage_caches.py",
            "tests/serving/test_placements.py",
            "tests/serving/test_placements_pages.py",
            "tests/serving/test_rules_edges.py",
            "tests/serving/test_rules_vectorised.py",
            "tests/serving/test_rules_survivors.py",
            "tests/preview/test_pages.py",
            "tests/test_cache_registry.py",
            # Written from this target's first run's survivors (issue #17).
            "tests/serving/test_rules_snapshot_survivors.py",
        ],
        isolation=FS,
    ),
    Target(
        "activity_validation",
        "shop_recs/activity/services.py",
        ["tests/api/test_events.py", "tests/api/test_validation_edges.py", "tests/imports/test_event_import.py"],
        ["_validate_events", "_future_tolerance", "clean_event_rows"],
        isolation=FS,
    ),
    Target(
        "product_cleaning",
        "shop_recs/catalog/services.py",
        ["tests/api/test_products.py", "tests/api/test_validation_edges.py", "tests/imports/test_catalog_import.py"],
        [
            "normalize_category_path",
            "_check_str",
            "check_batch_shape",
            "clean_product_rows",
            "_clean_product_row",
            "_clean_category",
            "_clean_price",
        ],
        isolation=FS,
    ),
    Target(
        "shared_validation",
        "shop_recs/catalog/validation.py",
        [
            "tests/catalog/test_validation_rules.py",
            "tests/api/test_hostile_input.py",
            "tests/api/test_validation_edges.py",
            "tests/api/test_events.py",
            "tests/api/test_products.py",
            "tests/imports/test_event_import.py",
            "tests/imports/test_catalog_import.py",
        ],
        isolation=FS,
    ),
    Target(
        "ads_services",
        "shop_recs/ads/services.py",
        [*ADS_TESTS],
        isolation=FS,
    ),
    Target(
        # The exact charging (one conditional UPDATE per impression or click) since money in ads.
        "ads_sql",
        "shop_recs/ads/sql.py",
        # Plus sql.py's own direct tests (written from the PostgreSQL run's survivors; run with --postgres).
        [*ADS_TESTS, "tests/ads/test_sql_survivors.py"],
        isolation=FS,
    ),
    Target(
        "ads_eligibility",
        "shop_recs/ads/eligibility.py",
        [
            "tests/ads/test_serving.py",
            "tests/ads/test_budget_and_caps.py",
            "tests/ads/test_pacing.py",
            # The batched snapshot (_load) against spec_of per campaign, and the survivors of issue #17's run.
            "tests/ads/test_visitor_cache.py",
            "tests/ads/test_eligibility_survivors.py",
        ],
        isolation=FS,
    ),
]

COPY_IGNORE = shutil.ignore_patterns(
    ".venv",
    ".git",
    "mutants",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    "staticfiles",
    "node_modules",
    "*.sqlite3",
    "*.pyc",
)
TOP_LEVEL_SKIP = {"var", ".venv", ".git", "mutants", ".ci"}
ALSO_COPY = ["manage.py", "templates", "static", "locale"]
STATUS_BUCKETS = {"killed": "killed", "survived": "survived", "timeout": "timeout", "skipped": "skipped"}

# Run inside the copy (mutmut reads its configuration from the current directory).
_HELPER = r"""
import json, sys
from pathlib import Path
from mutmut.mutation.data import SourceFileMutationData
from mutmut.mutation.file_mutation import mutate_file_contents
from mutmut.stats import status_by_exit_code
from mutmut.utils.format_utils import get_mutant_name

mode, path = sys.argv[1], Path(sys.argv[2])
if mode == "names":
    mutated = mutate_file_contents(str(path), path.read_text())
    print(json.dumps([get_mutant_name(path, n) for n in mutated.mutant_names]))
else:
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    data = SourceFileMutationData(path=path)
    data.load()
    out = {}
    for key, code in data.exit_code_by_key.items():
        status = status_by_exit_code[code]
        diff = get_diff_for_mutant(key, path=path) if status not in ("killed", "not checked") else ""
        out[key] = {"status": status, "diff": diff}
    print(json.dumps(out))
"""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def copy_tree(dest: Path) -> None:
    dest.mkdir(parents=True)
    for entry in ROOT.iterdir():
        if entry.name in TOP_LEVEL_SKIP:
            continue
        if entry.is_dir():
            shutil.copytree(entry, dest / entry.name, ignore=COPY_IGNORE, symlinks=True)
        elif not entry.name.endswith(".sqlite3"):
            shutil.copy2(entry, dest / entry.name)


def clean_env() -> dict[str, str]:
    env = dict(os.environ)
    # SQLite, no services: tests that need PostgreSQL/Redis skip (and are not in the selections).
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CI"):
        env.pop(name, None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


#: The pytest plugin ``--postgres`` writes into the copy (see the module docstring). pytest-django adds
#: ``_<TOX_PARALLEL_ENV>`` to the test database's name in a session fixture, which runs after this
#: hook. mutmut forks every mutant's child from one fork server, so the slot is taken in the child's own
#: pytest session, not at import time (the fork server imported this module once). The slot is an
#: exclusive ``flock`` on ``<slot>.lock``: the kernel releases it when the process dies, so a child
#: killed by mutmut's timeout frees its slot; its ``<slot>.dirty`` mark stays, and the next session
#: in that slot builds the database anew (the killed child may have left committed rows behind).
TEST_DB_PLUGIN = "_mutation_test_db"
TEST_DB_SLOTS_ENV = "MUTATION_TEST_DB_SLOTS"
_TEST_DB_PLUGIN_SOURCE = '''"""Written by benchmarks/mutation.py --postgres: each pytest session takes a free
test database slot (test_<db>_mut<slot>), kept between sessions (--reuse-db)."""

import fcntl
import os
from pathlib import Path


def pytest_configure(config):
    slots = Path(os.environ["MUTATION_TEST_DB_SLOTS"])
    slots.mkdir(parents=True, exist_ok=True)
    for slot in range(64):
        fd = os.open(slots / f"{slot}.lock", os.O_CREAT | os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        break
    else:
        raise RuntimeError(f"no free test database slot in {slots}")
    dirty = slots / f"{slot}.dirty"
    config.option.reuse_db = True
    config.option.create_db = dirty.exists()
    dirty.touch()
    config._mutation_test_db = (fd, dirty)
    os.environ["TOX_PARALLEL_ENV"] = f"mut{slot}"


def pytest_unconfigure(config):
    held = getattr(config, "_mutation_test_db", None)
    if held:
        fd, dirty = held
        dirty.unlink(missing_ok=True)
        os.close(fd)
'''


def run_env(args: argparse.Namespace, slots: Path) -> dict[str, str]:
    """The environment of the test runs: :func:`clean_env` plus the services ``--postgres``/``--redis`` name
    (and, for PostgreSQL, the directory of the test database slots)."""
    env = clean_env()
    if args.postgres:
        env["DATABASE_URL"] = args.postgres
        env[TEST_DB_SLOTS_ENV] = str(slots)
        # A PostgreSQL-only test that cannot reach the server fails instead of skipping (tests/conftest.py).
        env["CI"] = "true"
    if args.redis:
        env["REDIS_URL"] = env["CELERY_BROKER_URL"] = args.redis
    return env


def drop_test_databases(url: str) -> list[str]:
    """Drop the slots' ``test_<db>_mut<slot>`` databases (kept between sessions, see ``TEST_DB_PLUGIN``)."""
    # Imported here: only the PostgreSQL mode needs psycopg (the default SQLite runs do not).
    import psycopg
    from psycopg import sql

    dbname = url.rsplit("/", 1)[-1].split("?", 1)[0]
    pattern = "test_" + dbname + "_mut"  # LIKE: "_" matches any one character, escaped below
    pattern = pattern.replace("_", "\\_") + "%"
    # The maintenance database, as Django's test runner does: the URL's own database need not exist.
    with psycopg.connect(url, dbname="postgres", autocommit=True) as conn:
        names = [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", [pattern])]
        for name in names:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    return names


def expand_tests(work: Path, patterns: list[str]) -> list[str]:
    tests: list[str] = []
    for pattern in patterns:
        tests += sorted(str(p.relative_to(work)) for p in work.glob(pattern))
    return tests


def failing_tests(
    work: Path, tests: list[str], timeout: int, extra: list[str], env: dict[str, str]
) -> tuple[list[str], str]:
    """Node ids that fail on the unmutated copy (deselected for the mutation run), and pytest's summary."""
    proc = subprocess.run(
        [PYTHON, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", "-rf", *extra, *tests],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"pytest could not run the selection (exit {proc.returncode}):\n{proc.stdout[-3000:]}")
    failed = [m.group(1) for m in re.finditer(r"^FAILED (\S+)", proc.stdout, re.M)]
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    return failed, summary


def toml_list(values: list[str]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def write_config(
    work: Path,
    target: Target,
    tests: list[str],
    deselect: list[str],
    extra: list[str],
    timeout_constant: float,
    also_copy: list[str] = ALSO_COPY,
) -> None:
    pyproject = work / "pyproject.toml"
    text = pyproject.read_text()
    # Drop the checkout's [tool.mutmut] table (from its header to the next table header).
    text = re.sub(r"^\[tool\.mutmut\]\n(?:(?!^\[).*\n?)*", "", text, flags=re.M)
    args = ["-p", "no:cacheprovider", *extra]
    for node in deselect:
        args += ["--deselect", node]
    text += (
        "\n[tool.mutmut]\n"
        f'source_paths = ["shop_recs", "analytics"]\n'
        f"only_mutate = {toml_list([target.path])}\n"
        f"also_copy = {toml_list(also_copy)}\n"
        f"pytest_add_cli_args = {toml_list(args)}\n"
        f"pytest_add_cli_args_test_selection = {toml_list(tests)}\n"
        # mutmut's wall-clock limit per mutant is (tests' time + this) * 15 s; every mutant's run starts
        # pytest and builds the test database, which on a loaded 2-core box alone can pass mutmut's 15 s.
        f"timeout_constant = {timeout_constant}\n"
        f'process_isolation = "{target.isolation}"\n'
    )
    pyproject.write_text(text)


def helper(work: Path, mode: str, path: str) -> object:
    proc = subprocess.run(
        [PYTHON, "-c", _HELPER, mode, path], cwd=work, env=clean_env(), capture_output=True, text=True, timeout=300
    )
    if proc.returncode != 0:
        raise RuntimeError(f"mutmut helper ({mode}) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def function_of(key: str) -> str:
    """``pkg.mod.x_func__mutmut_3`` -> ``func``; ``pkg.mod.xǁClsǁmeth__mutmut_1`` -> ``Cls.meth``."""
    mangled = key.partition("__mutmut_")[0].rpartition(".")[2]
    if "ǁ" in mangled:
        _, cls, meth = mangled.split("ǁ")
        return f"{cls}.{meth}"
    return mangled[2:]


def sample(names: list[str], n: int | None) -> list[str]:
    if n is None or n >= len(names):
        return names
    step = len(names) / n
    return [names[int(i * step)] for i in range(n)]


def function_spans(source: str) -> dict[str, tuple[int, int]]:
    spans: dict[str, tuple[int, int]] = {}
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            spans[node.name] = (node.lineno, node.end_lineno or node.lineno)
        elif isinstance(node, ast.ClassDef):
            for sub in node.body:
                if isinstance(sub, ast.FunctionDef | ast.AsyncFunctionDef):
                    spans[f"{node.name}.{sub.name}"] = (sub.lineno, sub.end_lineno or sub.lineno)
    return spans


def mutant_line(diff: str, func: str, lines: list[str], spans: dict[str, tuple[int, int]]) -> int | None:
    """The source line of the first removed line of the diff, searched within the function's span."""
    removed = [ln[1:].strip() for ln in diff.splitlines() if ln.startswith("-") and not ln.startswith("---")]
    if not removed or func not in spans:
        return spans.get(func, (None,))[0]
    start, end = spans[func]
    guess, offset = start, None
    for ln in diff.splitlines():
        hunk = re.match(r"@@ -(\d+)", ln)
        if hunk:
            offset = int(hunk.group(1)) - 1
        elif offset is not None:
            if ln.startswith("-"):
                guess = start + offset
                break
            offset += 1
    matches = [i for i in range(start, end + 1) if lines[i - 1].strip() == removed[0]]
    if not matches:
        return guess
    return min(matches, key=lambda i: abs(i - guess))


def file_versions(work: Path, paths: list[str]) -> dict[str, str]:
    """For each measured file: its git blob id, and whether it is HEAD's version or a working-tree edit."""
    out = {}
    for path in paths:
        blob = subprocess.run(["git", "hash-object", str(work / path)], capture_output=True, text=True).stdout.strip()
        head = subprocess.run(["git", "rev-parse", f"HEAD:{path}"], cwd=ROOT, capture_output=True, text=True)
        state = "HEAD" if head.stdout.strip() == blob else ("new file" if head.returncode else "working-tree edit")
        out[path] = f"{blob[:10]} ({state})"
    return out


def run_target(target: Target, base: Path, args: argparse.Namespace) -> dict:
    work = base / target.name
    started = time.monotonic()
    copy_tree(work)
    tests = expand_tests(work, target.tests)
    versions = file_versions(work, [target.path, *tests])
    if not tests:
        raise RuntimeError(f"no test files match {target.tests}")
    # A fixed Hypothesis seed: the unmutated run and mutmut's runs then draw the same examples (a property
    # test that finds a bug only on some seeds would otherwise pass the check above and fail mutmut's).
    extra = ["--hypothesis-seed=0"] + (["--no-migrations"] if args.no_migrations else [])
    also_copy = ALSO_COPY
    if args.postgres:
        # A test database per slot (TEST_DB_PLUGIN); mutmut copies the plugin into mutants/, which is on
        # the children's sys.path.
        (work / f"{TEST_DB_PLUGIN}.py").write_text(_TEST_DB_PLUGIN_SOURCE)
        extra += ["-p", TEST_DB_PLUGIN]
        also_copy = [*ALSO_COPY, f"{TEST_DB_PLUGIN}.py"]
        # A database of an earlier run may have an older schema: every run starts from none.
        drop_test_databases(args.postgres)
    env = run_env(args, base / f"{target.name}.test-db-slots")
    deselect, summary = failing_tests(work, tests, args.timeout, extra, env)
    if deselect:
        log(f"[{target.name}] {len(deselect)} test(s) fail on the unmutated tree; deselected: {deselect}")
    write_config(work, target, tests, deselect, extra, args.timeout_constant, also_copy)

    all_names = helper(work, "names", target.path)
    names = [n for n in all_names if not target.functions or function_of(n) in target.functions]
    chosen = sample(names, args.max_mutants)
    complete = len(chosen) == len(all_names)
    log(f"[{target.name}] {len(all_names)} mutants in the module, {len(names)} in scope, running {len(chosen)}")

    # Parallel children would share the one Redis database (see the module docstring).
    children = 1 if args.redis else args.max_children
    cmd = [str(Path(PYTHON).parent / "mutmut"), "run", "--max-children", str(children)]
    if not complete:
        cmd += chosen
    logfile = work / "mutmut-run.log"
    with logfile.open("w") as out:
        try:
            proc = subprocess.run(cmd, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=args.timeout)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    if args.postgres:
        log(f"[{target.name}] dropped the slots' test databases: {drop_test_databases(args.postgres)}")
    if rc != 0:
        log(f"[{target.name}] mutmut run exited {rc}; log: {logfile}\n" + logfile.read_text()[-2000:])

    results = helper(work, "results", target.path)
    results = {k: v for k, v in results.items() if k in set(chosen)}
    counts = {"killed": 0, "survived": 0, "timeout": 0, "skipped": 0, "other": 0, "not checked": 0}
    for r in results.values():
        status = r["status"]
        counts[STATUS_BUCKETS.get(status, "not checked" if status == "not checked" else "other")] += 1
    source = (work / target.path).read_text()
    lines, spans = source.splitlines(), function_spans(source)
    survivors = []
    for key, r in sorted(results.items(), key=lambda kv: _natural(kv[0])):
        if r["status"] in ("killed", "not checked"):
            continue
        func = function_of(key)
        survivors.append(
            {
                "mutant": key,
                "status": r["status"],
                "function": func,
                "line": mutant_line(r["diff"], func, lines, spans),
                "diff": r["diff"],
            }
        )
    scored = len(chosen) - counts["skipped"] - counts["not checked"]
    return {
        "target": target.name,
        "module": target.path,
        "tests": tests,
        "functions": target.functions,
        "versions": versions,
        "head": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
        "deselected": deselect,
        "pytest_extra": extra,
        "database": "PostgreSQL" if args.postgres else "SQLite",
        "redis": bool(args.redis),
        "max_children": children,
        "clean_run": summary,
        "mutants_in_module": len(all_names),
        "mutants_in_scope": len(names),
        "mutants": len(chosen),
        "sampled": len(chosen) < len(names),
        **counts,
        "score": (counts["killed"] / scored) if scored else None,
        "survivors": survivors,
        "mutmut_exit": rc,
        "seconds": round(time.monotonic() - started, 1),
        "workdir": str(work),
    }


def _natural(key: str) -> tuple:
    base, _, num = key.rpartition("__mutmut_")
    return (base, int(num) if num.isdigit() else 0)


def print_report(reports: list[dict]) -> None:
    header = f"{'module':<34} {'mutants':>8} {'killed':>7} {'survived':>9} {'timeout':>8} {'other':>6} {'score':>7}"
    print(header)
    print("-" * len(header))
    for r in reports:
        if "error" in r:
            print(f"{r['module']:<34} ERROR: {r['error'].splitlines()[0]}")
            continue
        scope = f"{r['mutants']}" + ("*" if r["sampled"] else "")
        score = f"{100 * r['score']:.1f}%" if r["score"] is not None else "-"
        other = r["other"] + r["not checked"]
        print(
            f"{r['module']:<34} {scope:>8} {r['killed']:>7} {r['survived']:>9} {r['timeout']:>8} {other:>6} {score:>7}"
        )
    print("* = a sample (--max-mutants); see the per-target notes below for the scope")
    for r in reports:
        if "error" in r:
            continue
        print()
        scope = f"functions {', '.join(r['functions'])}" if r["functions"] else "whole module"
        print(
            f"== {r['module']} ({scope}; {r['mutants']} of {r['mutants_in_scope']} mutants in scope, "
            f"{r['mutants_in_module']} in the module; {r['seconds']} s)"
        )
        print(f"   tests: {' '.join(r['tests'])}; unmutated run: {r['clean_run']}")
        services = r.get("database", "SQLite") + (" + Redis" if r.get("redis") else "")
        print(f"   database: {services}; mutmut --max-children {r.get('max_children')}")
        if r["mutmut_exit"] != 0:
            print(f"   mutmut run exited {r['mutmut_exit']} (see {r['workdir']}/mutmut-run.log with --keep)")
        print(f"   measured at {r['head']}: " + "; ".join(f"{k} {v}" for k, v in r["versions"].items()))
        if r["deselected"]:
            print(f"   deselected (fail on the unmutated tree): {', '.join(r['deselected'])}")
        for s in r["survivors"]:
            print(f"-- {r['module']}:{s['line']} {s['status']} {s['mutant']}")
            print("\n".join("   " + ln for ln in s["diff"].splitlines()[2:]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    names = [t.name for t in TARGETS]
    parser.add_argument(
        "--only", action="append", metavar="MODULE", help=f"a target name ({', '.join(names)}) or its path; repeatable"
    )
    parser.add_argument("--max-mutants", type=int, help="an evenly spaced sample of N mutants per target")
    parser.add_argument("--max-children", type=int, default=2, help="mutmut workers (default 2)")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per mutmut run (default 1200)")
    parser.add_argument(
        "--no-migrations",
        action="store_true",
        help="pytest-django builds the test database from the models (each mutant's run starts faster)",
    )
    parser.add_argument(
        "--timeout-constant",
        type=float,
        default=6.0,
        help="mutmut's timeout_constant: a mutant times out after (tests' time + this) * 15 s (default 6)",
    )
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="run the tests on PostgreSQL (DATABASE_URL=URL, CI=true), one test database per mutmut child",
    )
    parser.add_argument(
        "--redis",
        metavar="URL",
        help="also REDIS_URL/CELERY_BROKER_URL=URL; runs one mutant at a time (children would share it)",
    )
    parser.add_argument("--workdir", type=Path, help="where the copies go (default: a new temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the copies (mutmut browse/show work there)")
    parser.add_argument("--json", type=Path, help="also write the full results as JSON")
    parser.add_argument("--list", action="store_true", help="print the targets and their tests, run nothing")
    args = parser.parse_args()

    targets = TARGETS
    if args.only:
        wanted = set(args.only)
        targets = [t for t in TARGETS if t.name in wanted or t.path in wanted]
        unknown = wanted - {t.name for t in targets} - {t.path for t in targets}
        if unknown:
            parser.error(f"unknown target(s) {sorted(unknown)}; choose from {names}")
    if args.list:
        for t in targets:
            print(
                f"{t.name:<20} {t.path:<34} {' '.join(t.tests)}"
                + (f"  [{', '.join(t.functions)}]" if t.functions else "")
            )
        return 0

    base = args.workdir or Path(tempfile.mkdtemp(prefix="shop_recs_mutation_"))
    base.mkdir(parents=True, exist_ok=True)
    reports = []
    try:
        for target in targets:
            log(f"[{target.name}] copying the tree to {base / target.name} and running mutmut ...")
            try:
                reports.append(run_target(target, base, args))
                if args.json:  # after each target, so a run cut short still leaves its figures
                    args.json.write_text(json.dumps(reports, indent=2))
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                reports.append({"target": target.name, "module": target.path, "error": str(exc)})
                log(f"[{target.name}] ERROR {exc}")
            finally:
                if not args.keep:
                    shutil.rmtree(base / target.name, ignore_errors=True)
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(base, ignore_errors=True)
    print_report(reports)
    if args.json:
        args.json.write_text(json.dumps(reports, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
