"""Unfinished runs and jobs show a live progress box that polls their status URL."""

import pytest

from analytics.evaluation import services, tuning

pytestmark = pytest.mark.django_db


def test_render_active(store, analyst, client):
    services.start_evaluation(store, ["popularity"], enqueue=False)
    tuning.start_tuning(store, ["popularity"], enqueue=False)
    client.force_login(analyst)
    html = client.get("/s/alpha/evaluation/").content.decode()
    assert "data-status-url" in html and "in progress" in html
    r = services.start_evaluation(store, ["popularity"], enqueue=False)
    assert "data-status-url" in client.get(f"/s/alpha/evaluation/runs/{r.pk}/").content.decode()
