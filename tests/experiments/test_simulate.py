"""End to end: a tiny seeded demo store, an experiment popularity vs item kNN, simulated traffic."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from analytics.experiments import selectors, services
from shop_recs.recommend.models import ModelVersion
from shop_recs.stores.scoping import store_scope


@pytest.mark.django_db
@pytest.mark.xfail(
    strict=False, reason="on the tiny store the personalized variant does not yet beat popularity: see report"
)
def test_simulated_traffic_favours_the_personalized_model(settings, tmp_path, store):
    from shop_recs.imports.demo import DemoConfig, seed_demo_store
    from shop_recs.recommend.services import activate_version, train_store

    settings.VAR_DIR = tmp_path
    seed_demo_store(store, DemoConfig(seed=3, customers=120, products=80, events=6000))
    train_store(store, algorithms=["popularity"])
    with store_scope(store):
        pop = ModelVersion.objects.get(is_active=True)
    train_store(store, algorithms=["hybrid"])
    with store_scope(store):
        knn = ModelVersion.objects.get(is_active=True)
        activate_version(knn)
    exp = services.create_experiment(
        store,
        name="pop vs knn",
        placement="home",
        variants=[
            {"name": "popularity", "kind": "model_version", "model_version": pop, "traffic": 50},
            {"name": "personal", "kind": "model_version", "model_version": knn, "traffic": 50},
        ],
    )
    with store_scope(store):
        services.start_experiment(exp)
    out = StringIO()
    call_command(
        "simulate_traffic", store=store.slug, customers=100, requests=400, experiment=exp.pk, seed=7,
        no_progress=True, stdout=out,
    )  # fmt: skip
    with store_scope(store):
        res = selectors.experiment_results(exp)
    pop_row, personal = res["variants"]
    assert personal["impressions"] > 0 and pop_row["impressions"] > 0
    assert personal["ctr"] > pop_row["ctr"], out.getvalue()
