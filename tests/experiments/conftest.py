"""Reuse the serving fixtures (a tiny trained store); tests/conftest.py empties the in-process caches."""

from __future__ import annotations

from tests.serving.conftest import _fresh_serving, add_events, shop  # noqa: F401
