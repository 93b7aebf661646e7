"""The evaluation pages: the charts draw exactly the stored numbers, compare, promote, roles, isolation."""

from __future__ import annotations

import base64
import json
import re
from datetime import timedelta

import numpy as np
import pytest

from analytics.evaluation import charts, selectors, services, tuning, views
from analytics.evaluation.models import EvaluationRun, TuningJob
from shop_recs.platform.jobs import JobStatus
from shop_recs.stores.scoping import store_scope, unscoped
from shop_recs.training import config as training_config_module
from shop_recs.training.models import ModelVersion, StoreTrainingConfig

pytestmark = pytest.mark.django_db


def _values(v):
    """A plotly JSON array: a list, or a typed array ``{"dtype", "bdata"}`` (plotly >= 6)."""
    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"])).tolist()
    return list(v)


def _same(a, b):
    a, b = _values(a), list(b)
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        if y is None:
            assert x is None
        else:
            assert x == pytest.approx(y, rel=1e-12, abs=1e-15)


def _page_figures(html: str) -> dict[str, dict]:
    return {
        m.group(1): json.loads(m.group(2))
        for m in re.finditer(r'<script id="(fig-[\w-]+)" type="application/json">(.*?)</script>', html, re.S)
    }


@pytest.fixture
def finished_run(store, taste_store, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = services.start_evaluation(store, ["popularity", "item_knn"], "leave_last", {}, [5, 10])
    with store_scope(store):
        run = EvaluationRun.objects.get(pk=run.pk)
    assert run.status == JobStatus.SUCCEEDED, run.error
    return run


def _check_run_figures(figs: dict[str, dict], res: dict, metric: str, curve: str) -> None:
    algos = charts.algorithm_order(res)
    assert algos == list(res["order"])
    # Metric bars with CI error bars.
    bar = figs["bars"]["data"][0]
    assert list(bar["x"]) == algos
    _same(bar["y"], [res["algorithms"][a]["metrics"][metric] for a in algos])
    _same(
        bar["error_y"]["array"],
        [res["algorithms"][a]["ci"][metric][1] - res["algorithms"][a]["metrics"][metric] for a in algos],
    )
    _same(
        bar["error_y"]["arrayminus"],
        [res["algorithms"][a]["metrics"][metric] - res["algorithms"][a]["ci"][metric][0] for a in algos],
    )
    # k-curves.
    for trace in figs["curves"]["data"]:
        _same(trace["x"], res["curve_ks"])
        _same(trace["y"], res["algorithms"][trace["meta"]]["curves"][curve])
    # Accuracy vs coverage / novelty.
    for key in ("coverage", "novelty"):
        for trace in figs[key]["data"]:
            entry = res["algorithms"][trace["meta"]]
            _same(trace["x"], [entry["beyond"][key]])
            _same(trace["y"], [entry["metrics"][metric]])
    # Popularity bias: catalogue, test and each algorithm's recommendations.
    bins = res["popularity_bins"]
    by_meta = {t["meta"]: t for t in figs["bias"]["data"]}
    _same(by_meta["catalog"]["y"], bins["catalog"])
    _same(by_meta["test"]["y"], bins["test"])
    for a in algos:
        assert list(by_meta[a]["x"]) == bins["labels"]
        _same(by_meta[a]["y"], res["algorithms"][a]["popularity_bias"]["recommended"])
    # Slices.
    keys = charts.slice_keys(res)
    for trace in figs["slices"]["data"]:
        slices = res["algorithms"][trace["meta"]]["slices"]
        _same(trace["y"], [slices[k].get(metric) for k in keys])
        _same(trace["customdata"], [slices[k]["n_users"] for k in keys])


def test_every_run_chart_draws_the_stored_numbers(finished_run):
    res = finished_run.results
    for metric in ("ndcg@10", "recall@5", "precision@10"):
        for curve in ("recall", "ndcg", "map"):
            _check_run_figures(views.run_figures(res, metric, curve), res, metric, curve)


def test_the_rendered_page_embeds_the_stored_numbers(finished_run, analyst, login):
    client = login(analyst)
    url = f"/s/alpha/evaluation/runs/{finished_run.pk}/?metric=recall@10&curve=ndcg"
    html = client.get(url).content.decode()
    figs = {k.removeprefix("fig-"): v for k, v in _page_figures(html).items()}
    assert {"bars", "curves", "coverage", "novelty", "bias", "slices"} <= set(figs)
    _check_run_figures(figs, finished_run.results, "recall@10", "ndcg")
    assert 'data-algorithm="item_knn"' in html and "plotly.min.js" in html


def test_compare_two_runs(finished_run, store, analyst, login, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        other = services.start_evaluation(store, ["popularity"], "random", {"test_fraction": 0.3}, [10])
    with store_scope(store):
        other = EvaluationRun.objects.get(pk=other.pk)
    client = login(analyst)
    html = client.get(f"/s/alpha/evaluation/runs/{finished_run.pk}/?compare={other.pk}").content.decode()
    assert 'id="compare"' in html
    fig = _page_figures(html)["fig-compare"]
    left, right = fig["data"]
    assert list(left["x"]) == ["popularity", "item_knn"]
    _same(left["y"], [finished_run.results["algorithms"][a]["metrics"]["ndcg@10"] for a in ("popularity", "item_knn")])
    _same(right["y"], [other.results["algorithms"]["popularity"]["metrics"]["ndcg@10"], None])
    assert client.get(f"/s/alpha/evaluation/runs/{finished_run.pk}/?compare=999999").status_code == 404


def test_versions_and_tuning_charts_draw_the_stored_numbers(
    store, popularity_puzzle, django_capture_on_commit_callbacks
):
    with unscoped():
        for i, (algo, ndcg) in enumerate([("popularity", 0.1), ("item_knn", 0.3), ("item_knn", 0.35)]):
            v = ModelVersion.objects.create(
                store=store, algorithm=algo, artifact_path="x", checksum="0", metrics={"ndcg@10": ndcg}
            )
            ModelVersion.objects.filter(pk=v.pk).update(created_at=v.created_at + timedelta(minutes=i))
    with store_scope(store):
        history = selectors.version_history()
    fig = json.loads(charts.versions_figure(history).to_json())
    by_meta = {t["meta"]: t for t in fig["data"]}
    _same(by_meta["item_knn"]["y"], [0.3, 0.35])
    _same(by_meta["popularity"]["y"], [0.1])

    with django_capture_on_commit_callbacks(execute=True):
        job = tuning.start_tuning(store, ["popularity"], "temporal", {"test_days": 1})
    with store_scope(store):
        rows = [{"algorithm": t.algorithm, "params": t.params, "score": t.score} for t in selectors.trials(job)]
    fig = json.loads(charts.tuning_figure(rows, "ndcg@10").to_json())
    _same(fig["data"][0]["y"], [r["score"] for r in rows])


def test_index_start_and_status(store, taste_store, analyst, login, django_capture_on_commit_callbacks):
    client = login(analyst)
    html = client.get("/s/alpha/evaluation/").content.decode()
    assert "New evaluation run" in html and "New tuning job" in html
    data = {"eval-algorithms": ["popularity"], "eval-protocol": "leave_last", "eval-ks": "3, 10", "eval-test_days": "7"}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/s/alpha/evaluation/runs/start/", data)
    with store_scope(store):
        run = EvaluationRun.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"/runs/{run.pk}/")
    assert run.ks == [3, 10] and run.created_by == analyst
    status = client.get(f"/s/alpha/evaluation/runs/{run.pk}/status/").json()
    assert status["status"] == "succeeded" and status["finished"] and status["progress"] == 100
    bad = client.post("/s/alpha/evaluation/runs/start/", {**data, "eval-ks": "0, 99"})
    assert bad.status_code == 400


def test_tuning_page_promote_for_merchants_only(
    store, popularity_puzzle, merchant, analyst, client, django_capture_on_commit_callbacks
):
    client.force_login(analyst)
    data = {
        "tune-algorithms": ["popularity"],
        "tune-protocol": "temporal",
        "tune-test_days": "1",
        "tune-metric": "ndcg@10",
        "tune-n_iter": "20",
    }
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post("/s/alpha/evaluation/tuning/start/", data).status_code == 302
    with store_scope(store):
        job = TuningJob.objects.get()
    assert job.status == JobStatus.SUCCEEDED, job.error
    html = client.get(f"/s/alpha/evaluation/tuning/{job.pk}/?sort=algorithm").content.decode()
    assert 'id="leaderboard"' in html and "count=weight" in html
    assert client.get(f"/s/alpha/evaluation/tuning/{job.pk}/status/").json()["n_done"] == 3
    promote_url = f"/s/alpha/evaluation/tuning/{job.pk}/promote/"
    assert client.post(promote_url).status_code == 403
    assert client.post("/s/alpha/evaluation/settings/", {"max_metric_drop": "0.1"}).status_code == 403
    with store_scope(store):
        assert not StoreTrainingConfig.objects.exists()
    client.force_login(merchant)
    assert client.post(promote_url).status_code == 302
    with store_scope(store):
        assert StoreTrainingConfig.objects.get().params["popularity"] == {"count": "weight"}
    posted = {"max_metric_drop": "0.1", "min_lift": "0.02", "max_coverage_loss": "0.25"}
    assert client.post("/s/alpha/evaluation/settings/", posted).status_code == 302
    assert training_config_module.store_gate_config(store) == {
        "max_drop": 0.1,
        "min_lift": 0.02,
        "max_coverage_loss": 0.25,
    }
    html = client.get("/s/alpha/evaluation/").content.decode()
    assert "from tuning job" in html


def test_other_stores_runs_and_jobs_are_404(
    store, other_store, make_taste_store, merchant, login, django_capture_on_commit_callbacks
):
    make_taste_store(other_store)
    with django_capture_on_commit_callbacks(execute=True):
        theirs = services.start_evaluation(other_store, ["popularity"], "leave_last", {}, [10])
    job = tuning.start_tuning(other_store, ["popularity"], enqueue=False)
    with django_capture_on_commit_callbacks(execute=True):
        mine = services.start_evaluation(store, ["popularity"], "leave_last", {}, [10])
    client = login(merchant)
    for url in (
        f"/s/alpha/evaluation/runs/{theirs.pk}/",
        f"/s/alpha/evaluation/runs/{theirs.pk}/status/",
        f"/s/alpha/evaluation/runs/{mine.pk}/?compare={theirs.pk}",
        f"/s/alpha/evaluation/tuning/{job.pk}/",
        f"/s/alpha/evaluation/tuning/{job.pk}/status/",
        f"/s/beta/evaluation/runs/{theirs.pk}/",
        "/s/beta/evaluation/",
    ):
        assert client.get(url).status_code == 404, url
    assert client.post(f"/s/alpha/evaluation/tuning/{job.pk}/promote/").status_code == 404
    html = client.get("/s/alpha/evaluation/").content.decode()
    assert f'data-eval-run="{theirs.pk}"' not in html and f'data-eval-run="{mine.pk}"' in html
