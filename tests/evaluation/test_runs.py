"""Evaluation runs end to end (eager Celery): what is stored, and that it is statistically sane."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analytics.evaluation import services
from analytics.evaluation.models import EvaluationRun
from analytics.models import CustomerProfile, Segment
from shop_recs.platform.jobs import JobStatus
from shop_recs.stores.scoping import store_scope, unscoped

pytestmark = pytest.mark.django_db


@pytest.fixture
def segments(store, taste_store):
    """Automatic segments for the two taste groups (profiles exist for every customer)."""
    with unscoped():
        mugs = Segment.objects.create(store=store, kind=Segment.Kind.AUTO, name="Mug people", cluster_index=0)
        shirts = Segment.objects.create(store=store, kind=Segment.Kind.AUTO, name="Shirt people", cluster_index=1)
        for i, cust in enumerate(taste_store["customers"]):
            seg = mugs if i % 2 == 0 else shirts
            CustomerProfile.objects.create(store=store, customer=cust, auto_segment=seg, segment_ids=[seg.pk])
    return mugs, shirts


def _run(store, django_capture_on_commit_callbacks, **kwargs) -> EvaluationRun:
    args = dict(algorithms=["popularity", "item_knn"], protocol="leave_last", protocol_params={}, ks=[5, 10])
    args.update(kwargs)
    with django_capture_on_commit_callbacks(execute=True):
        run = services.start_evaluation(store, **args)
    with store_scope(store):
        return EvaluationRun.objects.get(pk=run.pk)


def test_run_end_to_end_stores_every_result(store, taste_store, segments, django_capture_on_commit_callbacks):
    run = _run(store, django_capture_on_commit_callbacks)
    assert run.status == JobStatus.SUCCEEDED, run.error
    assert run.progress == 100 and run.finished_at and "loading data" in run.timings
    res = run.results
    assert set(res["algorithms"]) == {"popularity", "item_knn"}
    assert res["curve_ks"] == list(range(1, 51))
    assert run.split_info["test_users"] == 24
    for name, entry in res["algorithms"].items():
        assert entry["n_users"] == 24
        # Bootstrap CI bounds bracket the mean, for every stored metric.
        for key, (lo, hi) in entry["ci"].items():
            mean = entry["metrics"][key]
            assert lo - 1e-12 <= mean <= hi + 1e-12, (name, key, lo, mean, hi)
        # Recall@k can only grow with k; curves agree with the metrics at the chosen ks.
        recall = entry["curves"]["recall"]
        assert len(recall) == 50 and all(b >= a - 1e-12 for a, b in zip(recall, recall[1:], strict=False))
        for k in (5, 10):
            for m in services.CI_METRICS:
                assert math.isclose(entry["curves"][m][k - 1], entry["metrics"][f"{m}@{k}"], rel_tol=1e-9)
        beyond = entry["beyond"]
        assert 0 < beyond["coverage"] <= 1 and 0 <= beyond["gini"] < 1 and beyond["novelty"] > 0
        assert entry["metrics"]["coverage@10"] == beyond["coverage"]
        # Slices: cold/warm split the users, and one slice per automatic segment.
        slices = entry["slices"]
        assert slices["cold"]["n_users"] + slices["warm"]["n_users"] == 24
        seg_keys = {f"segment:{s.pk}" for s in segments}
        assert seg_keys <= set(slices) and sum(slices[k]["n_users"] for k in seg_keys) == 24
        assert np.isclose(sum(entry["popularity_bias"]["recommended"]), 1.0)
    assert res["segments"][f"segment:{segments[0].pk}"] == "Mug people"
    bins = res["popularity_bins"]
    assert np.isclose(sum(bins["catalog"]), 1.0) and np.isclose(sum(bins["test"]), 1.0)
    # Item kNN knows the taste groups; popularity does not.
    algos = res["algorithms"]
    assert algos["item_knn"]["metrics"]["ndcg@10"] > algos["popularity"]["metrics"]["ndcg@10"]


def test_auto_tune_records_the_tuned_config(store, taste_store, django_capture_on_commit_callbacks):
    run = _run(store, django_capture_on_commit_callbacks, algorithms=["popularity"], auto_tune=True)
    assert run.status == JobStatus.SUCCEEDED, run.error
    tuned = run.results["algorithms"]["popularity"]["tuned"]
    # the defaults, then the grid's points that differ from them (the grid restates the defaults once)
    assert tuned["n_trials"] == 2 and tuned["validation"]["carved_from"] == "train"
    assert run.results["algorithms"]["popularity"]["params"] == tuned["best_params"]


@pytest.mark.parametrize(
    ("protocol", "params"), [("temporal", {"test_days": 2}), ("random", {"test_fraction": 0.3, "seed": 1})]
)
def test_other_protocols(store, taste_store, django_capture_on_commit_callbacks, protocol, params):
    run = _run(
        store, django_capture_on_commit_callbacks, algorithms=["popularity"], protocol=protocol, protocol_params=params
    )
    assert run.status == JobStatus.SUCCEEDED, run.error
    assert run.split_info["protocol"] == protocol


def test_a_store_without_data_fails_visibly(store, django_capture_on_commit_callbacks):
    run = _run(store, django_capture_on_commit_callbacks)
    assert run.status == JobStatus.FAILED
    assert "no usable interactions" in run.error


def test_start_validates_input(store):
    with pytest.raises(ValueError):
        services.start_evaluation(store, ["nope"], enqueue=False)
    with pytest.raises(ValueError):
        services.start_evaluation(store, ["popularity"], ks=[0], enqueue=False)
    with pytest.raises(ValueError):
        services.start_evaluation(store, ["popularity"], protocol="weird", enqueue=False)
