"""The hash-locked dependency files agree with the pins they are made from (``./dev lock``, scripts/lock).

``./dev test`` and CI install ``requirements-dev.lock`` with ``--require-hashes``, the Dockerfile
``requirements.lock``: a pin added to requirements*.txt without re-locking would never be installed,
and a lock line without a hash would make pip refuse the whole file. Both mistakes fail here, naming
the package, with the command that fixes them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIX = "run ./dev lock (scripts/lock) and commit requirements*.lock"
# name==version, optionally with extras: "celery[redis]==5.7.0", "psycopg[binary]==3.3.9".
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)")


def normalize(name: str) -> str:
    """PEP 503 name: ``typing_extensions`` and ``Typing-Extensions`` are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path, seen: set[Path] | None = None) -> dict[str, str]:
    """``{name: version}`` of a requirements file, following ``-r`` includes."""
    seen = seen or set()
    seen.add(path)
    result: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("-r "):
            included = (path.parent / line[3:].strip()).resolve()
            if included not in seen:
                result.update(pins(included, seen))
        elif match := PIN.match(line):
            result[normalize(match.group(1))] = match.group(3)
    return result


def lock_entries(path: Path) -> dict[str, tuple[str, list[str]]]:
    """``{name: (version, hashes)}`` of a lock: each ``name==version \\`` line and its ``--hash`` lines."""
    entries: dict[str, tuple[str, list[str]]] = {}
    current: str | None = None
    for line in path.read_text().splitlines():
        if match := PIN.match(line):
            current = normalize(match.group(1))
            assert current not in entries, f"{path.name}: {current} is listed twice"
            entries[current] = (match.group(3), [])
        elif (stripped := line.strip()).startswith("--hash=") and current is not None:
            entries[current][1].append(stripped.split("=", 1)[1].rstrip(" \\"))
        elif stripped and not stripped.startswith("#"):
            assert stripped.startswith("--"), f"{path.name}: unexpected line {line!r}"
    return entries


LOCKS = [("requirements.txt", "requirements.lock"), ("requirements-dev.txt", "requirements-dev.lock")]


@pytest.mark.parametrize("requirements,lock", LOCKS)
def test_every_pinned_package_is_locked_at_the_same_version(requirements, lock):
    locked = lock_entries(ROOT / lock)
    missing = {name: v for name, v in pins(ROOT / requirements).items() if name not in locked}
    assert not missing, f"pinned in {requirements} but not in {lock}: {missing}; {FIX}"
    differ = {
        name: (version, locked[name][0])
        for name, version in pins(ROOT / requirements).items()
        if locked[name][0] != version
    }
    assert not differ, f"{requirements} and {lock} disagree (pinned, locked): {differ}; {FIX}"


@pytest.mark.parametrize("lock", [lock for _requirements, lock in LOCKS])
def test_every_lock_entry_has_a_sha256_hash(lock):
    entries = lock_entries(ROOT / lock)
    assert len(entries) >= 20, f"{lock} looks truncated: {len(entries)} entries"
    unhashed = sorted(name for name, (_version, hashes) in entries.items() if not hashes)
    assert not unhashed, f"{lock}: no --hash for {unhashed}; {FIX}"
    malformed = {
        name: h
        for name, (_version, hashes) in entries.items()
        for h in hashes
        if not re.fullmatch(r"sha256:[0-9a-f]{64}", h)
    }
    assert not malformed, f"{lock}: hashes that are not sha256 hex digests: {malformed}"


def test_the_dev_lock_installs_what_production_runs():
    """A package in both locks has one version: the tests run against what the Dockerfile installs."""
    runtime, dev = lock_entries(ROOT / "requirements.lock"), lock_entries(ROOT / "requirements-dev.lock")
    missing = sorted(set(runtime) - set(dev))
    assert not missing, f"in requirements.lock but not requirements-dev.lock: {missing}; {FIX}"
    differ = {name: (runtime[name][0], dev[name][0]) for name in runtime if runtime[name][0] != dev[name][0]}
    assert not differ, f"runtime and dev locks disagree: {differ}; {FIX}"


def test_installs_go_through_the_lock_with_hashes():
    """./dev (and through it .ci/run) and the Dockerfile install from a lock, in hash-checking mode."""
    dev = (ROOT / "dev").read_text()
    assert "--require-hashes -r requirements-dev.lock" in dev
    assert "sha256sum requirements-dev.lock" in dev  # the stamp re-installs when the lock changes
    assert "./dev test" in (ROOT / ".ci" / "run").read_text()
    assert "--require-hashes -r requirements.lock" in (ROOT / "Dockerfile").read_text()
