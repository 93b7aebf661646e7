"""Reuse the serving fixtures (a tiny trained store) and clear the experiments cache around tests."""

from __future__ import annotations

import pytest

from tests.serving.conftest import _fresh_serving, add_events, shop  # noqa: F401


@pytest.fixture(autouse=True)
def _fresh_experiments():
    from shop_recs.serving.experiments import invalidate

    invalidate()
    yield
    invalidate()
