from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture
def write_file(tmp_path):
    """Write ``text`` to ``tmp_path/name`` and return the path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return _write


@pytest.fixture(autouse=True)
def _var_dir(settings, tmp_path):
    """The demo generator writes its tastes file under VAR_DIR: keep tests out of the real one."""
    settings.VAR_DIR = tmp_path / "var"
