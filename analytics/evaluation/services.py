"""Writes of the evaluation app: evaluation runs, and the split helpers tuning jobs share.

* :func:`start_evaluation` / :func:`run_evaluation`: split the store's interactions with the chosen
  protocol, optionally tune every algorithm on a validation split carved from TRAIN only, fit on
  train, score on test and store every number the evaluation page draws (``EvaluationRun.results``).
* Tuning jobs live in :mod:`analytics.evaluation.tuning`; they share this module's split and
  validation helpers.

Like ``training.services.run_training``, the ``run_*`` functions never raise for a failure of the
job itself: they record it on the row (status, error) and the dashboard shows it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import scipy.sparse as sp
from django.db import transaction

from analytics.evaluation.models import EvaluationRun, Protocol
from analytics.models import CustomerProfile, Segment
from shop_recs.catalog.models import Product
from shop_recs.platform import jobs
from shop_recs.platform.jobs import JobProgress, JobStatus, json_safe
from shop_recs.recsys import metrics as mx
from shop_recs.recsys import registry
from shop_recs.recsys.evaluate import evaluate
from shop_recs.recsys.splits import Split, make_split, pair_timestamps, validation_split
from shop_recs.recsys.tuning import accepted_fit_kwargs, tune
from shop_recs.stores.models import Store
from shop_recs.stores.scoping import store_scope
from shop_recs.training.matrix import build_interactions

logger = logging.getLogger(__name__)

#: Metric@k curves always span k = 1..CURVE_MAX_K, whatever cutoffs the analyst picked.
CURVE_MAX_K = 50
#: Metrics with a bootstrap confidence interval and a k-curve.
CI_METRICS = mx.RANKING_METRICS
#: Upper bound of resampled values per bootstrap (n_resamples x n_users): keeps memory ~ 40 MB.
BOOTSTRAP_BUDGET = 5_000_000
DEFAULT_PROTOCOL_PARAMS: dict[str, dict[str, Any]] = {
    Protocol.TEMPORAL: {"test_days": 7.0},
    Protocol.RANDOM: {"test_fraction": 0.2, "seed": 0},
    Protocol.LEAVE_LAST: {"k": 1},
}


class EvaluationError(Exception):
    """A failure this module raises on purpose (recorded on the job row)."""


def available_algorithms() -> list[str]:
    return sorted(registry.ALGORITHMS)


def validate_algorithms(algorithms: Iterable[str], protocol: str) -> list[str]:
    algorithms = list(dict.fromkeys(algorithms))
    if not algorithms:
        raise ValueError("choose at least one algorithm")
    unknown = [a for a in algorithms if a not in registry.ALGORITHMS]
    if unknown:
        raise ValueError(f"unknown algorithm(s): {', '.join(unknown)}")
    if protocol not in Protocol.values:
        raise ValueError(f"unknown protocol {protocol!r}")
    return algorithms


def acting_user(user: Any) -> Any:
    return user if getattr(user, "is_authenticated", False) else None


def load_split(store: Store, protocol: str, protocol_params: dict[str, Any]) -> tuple[Any, Split]:
    """The store's interactions and the outer split; ``EvaluationError`` when there is nothing to score."""
    data = build_interactions(store)
    if data.matrix.nnz == 0:
        raise EvaluationError("The store has no usable interactions yet; nothing to evaluate.")
    kwargs = {**DEFAULT_PROTOCOL_PARAMS.get(protocol, {}), **(protocol_params or {})}
    try:
        split = make_split(data.log, protocol, **kwargs)
    except ValueError as exc:
        raise EvaluationError(f"The {protocol} split is not possible on this data: {exc}") from exc
    if len(split.test_users) == 0:
        raise EvaluationError("No customer has a test interaction under this protocol; try another one.")
    return data, split


def side_info(data: Any, item_ids: np.ndarray) -> dict[str, Any]:
    """Item texts and categories aligned with a split's columns (a subset of the store's items)."""
    col = {pk: i for i, pk in enumerate(np.asarray(data.item_ids).tolist())}
    pos = np.array([col[pk] for pk in np.asarray(item_ids).tolist()], dtype=np.int64)
    return {"item_features": [data.item_texts[i] for i in pos], "item_categories": data.item_categories[pos]}


def fit_kwargs_for(side: dict[str, Any], split: Split) -> dict[str, Any]:
    try:
        ts = pair_timestamps(split.train_log, split.train)
    except ValueError:
        ts = None
    return {**side, "timestamps": ts}


# --- evaluation runs ----------------------------------------------------------------------------


def start_evaluation(
    store: Store,
    algorithms: Iterable[str],
    protocol: str = Protocol.TEMPORAL,
    protocol_params: dict[str, Any] | None = None,
    ks: Iterable[int] = (5, 10, 20),
    auto_tune: bool = False,
    user: Any = None,
    *,
    tune_metric: str = "ndcg@10",
    enqueue: bool = True,
) -> EvaluationRun:
    """Create a queued evaluation run and enqueue its task once the transaction commits."""
    algorithms = validate_algorithms(algorithms, protocol)
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1 or ks[-1] > CURVE_MAX_K:
        raise ValueError(f"every k must be between 1 and {CURVE_MAX_K}")
    with store_scope(store), transaction.atomic():
        run = EvaluationRun.objects.create(
            store=store,
            algorithms=algorithms,
            protocol=protocol,
            protocol_params=json_safe(dict(protocol_params or {})),
            ks=ks,
            auto_tune=bool(auto_tune),
            tune_metric=tune_metric,
            created_by=acting_user(user),
        )
        if enqueue:
            # tasks.py imports this module for its task bodies: importing it at the top would be a cycle.
            from analytics.evaluation.tasks import run_evaluation_task

            jobs.enqueue_on_commit(run_evaluation_task, run)
    return run


def run_evaluation(run_id: int, on_progress: Callable[[str, int], None] | None = None) -> EvaluationRun:
    """The body of the evaluation task. Records success or failure on the row; never raises for it."""
    run = EvaluationRun.all_stores.select_related("store").get(pk=run_id)
    if _worker_died(run):
        return run
    # The claiming worker goes on the row so a redelivery can tell whether it still exists
    # (``split_info`` is replaced by the split's own figures when the run succeeds).
    if not jobs.claim(run, split_info={jobs.WORKER_KEY: jobs.worker_identity()}):
        return run
    progress = JobProgress(run, on_progress)
    try:
        with store_scope(run.store):
            results, split_info = _evaluate_run(run, progress)
        jobs.succeed(run, timings=progress.finish(), results=json_safe(results), split_info=json_safe(split_info))
    except Exception as exc:  # noqa: BLE001 - any failure of the evaluation fails the run, visibly
        logger.exception("evaluation run %s failed", run.pk)
        jobs.fail(run, exc, timings=progress.finish())
    run.refresh_from_db()
    return run


#: The error of a run whose worker was killed mid-run (seen by the broker's redelivery of its task).
WORKER_DIED_ERROR = (
    "The worker running this evaluation stopped (killed or out of memory) before it finished; start it again."
)


def _worker_died(run: EvaluationRun) -> bool:
    """A redelivery of a run whose worker is visibly gone: fail the run (nothing of it was saved).

    Failed rather than re-run: an evaluation that got its worker OOM-killed would kill the next one
    too, and the analyst can start it again. A run whose worker may still be alive (another host)
    is left to the heartbeat's stale sweep.
    """
    worker = str((run.split_info or {}).get(jobs.WORKER_KEY) or "")
    if run.status != JobStatus.RUNNING or not jobs.worker_gone(worker):
        return False
    logger.warning("evaluation run %s: its worker %s is gone; failing the run", run.pk, worker)
    jobs.fail(run, WORKER_DIED_ERROR)
    return True


def _segment_slices(split: Split) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Boolean user masks per automatic segment (from customer profiles), and the segments' names."""
    rows = CustomerProfile.objects.filter(auto_segment__isnull=False).values_list("customer_id", "auto_segment_id")
    by_customer = dict(rows)
    if not by_customer:
        return {}, {}
    names = dict(Segment.objects.filter(kind=Segment.Kind.AUTO).values_list("pk", "name"))
    seg_of_row = np.array([by_customer.get(int(pk), -1) for pk in split.user_ids.tolist()], dtype=np.int64)
    slices: dict[str, np.ndarray] = {}
    labels: dict[str, str] = {}
    for seg_id in sorted(set(seg_of_row.tolist()) - {-1}):
        key = f"segment:{seg_id}"
        slices[key] = seg_of_row == seg_id
        labels[key] = names.get(seg_id, f"#{seg_id}")
    return slices, labels


def popularity_bins(popularity: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Bin edges for item popularity (distinct train customers): 0, 1, 2-3, 4-7, ... (powers of two)."""
    top = int(max(1, np.max(popularity, initial=1)))
    edges = [0, 1]
    while edges[-1] <= top:
        edges.append(edges[-1] * 2)
    labels = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        labels.append(str(lo) if hi - lo == 1 else f"{lo}–{hi - 1}")
    return np.asarray(edges, dtype=np.float64), labels


def _shares(counts: np.ndarray) -> list[float]:
    total = float(counts.sum())
    return [float(c) / total if total else 0.0 for c in counts]


def _evaluate_run(run: EvaluationRun, progress: JobProgress) -> tuple[dict[str, Any], dict[str, Any]]:
    store = run.store
    ks = sorted({int(k) for k in run.ks}) or [10]
    main_k = ks[-1]
    progress.stage("loading data", 2)
    data, split = load_split(store, run.protocol, run.protocol_params)
    progress.stage("preparing slices", 10)
    segment_slices, segment_labels = _segment_slices(split)
    side = side_info(data, split.item_ids)
    fit_kwargs = fit_kwargs_for(side, split)
    train = sp.csr_matrix(split.train, dtype=np.float32)
    test = split.test
    n_items = split.n_items
    popularity = mx.item_popularity(train)
    n_train_users = int((np.diff(train.indptr) > 0).sum())

    # Popularity-bias reference distributions: the catalogue (products never bought in train sit in
    # bin 0) and what customers actually interacted with in test.
    edges, labels = popularity_bins(popularity)
    bin_of_item = np.clip(np.searchsorted(edges, popularity, side="right") - 1, 0, len(labels) - 1)
    n_products = Product.objects.count()
    catalog_counts = np.bincount(bin_of_item, minlength=len(labels)).astype(np.float64)
    catalog_counts[0] += max(0, n_products - n_items)
    test_item_counts = np.asarray((test != 0).sum(axis=0)).ravel()
    test_counts = np.bincount(bin_of_item, weights=test_item_counts, minlength=len(labels))

    valid_split = validation_split(split) if run.auto_tune else None
    results: dict[str, Any] = {
        "ks": ks,
        "main_k": main_k,
        "curve_ks": list(range(1, CURVE_MAX_K + 1)),
        "metric_names": list(CI_METRICS),
        "segments": segment_labels,
        "popularity_bins": {
            "labels": labels,
            "edges": edges.tolist(),
            "catalog": _shares(catalog_counts),
            "test": _shares(test_counts),
            "catalog_counts": catalog_counts.tolist(),
            "test_counts": test_counts.tolist(),
        },
        "order": list(run.algorithms),
        "algorithms": {},
    }
    n_algos = len(run.algorithms)
    span = 85.0 / n_algos
    for n, name in enumerate(run.algorithms):
        base = 12 + n * span
        params: dict[str, Any] = {}
        tuned = None
        if valid_split is not None:
            progress.stage(f"tuning {name}", base)
            val_kwargs = fit_kwargs_for(side, valid_split)
            res = tune(name, valid_split, metric=run.tune_metric, fit_kwargs=val_kwargs)
            params = dict(res.best_params)
            tuned = {
                "metric": res.metric,
                "best_params": params,
                "best_score": res.best_score,
                "n_trials": res.n_trials,
                "seconds": res.seconds,
                "validation": {k: v for k, v in valid_split.info.items() if isinstance(v, (int, float, str, bool))},
            }
        progress.stage(f"evaluating {name}", base + span * 0.4)
        results["algorithms"][name] = _evaluate_algorithm(
            name, params, train, test, fit_kwargs, ks, segment_slices, popularity, n_train_users, bin_of_item, labels
        )
        results["algorithms"][name]["tuned"] = tuned
        jobs.pause_for_fault_test("evaluation.algorithm_done")
    progress.stage("saving results", 98)
    return results, {**split.info, "protocol": split.protocol, "params": split.params}


def _evaluate_algorithm(
    name: str,
    params: dict[str, Any],
    train: sp.csr_matrix,
    test: sp.csr_matrix,
    fit_kwargs: dict[str, Any],
    ks: list[int],
    segment_slices: dict[str, np.ndarray],
    popularity: np.ndarray,
    n_train_users: int,
    bin_of_item: np.ndarray,
    bin_labels: list[str],
) -> dict[str, Any]:
    """Fit one algorithm on train and compute everything the page shows for it."""
    main_k = ks[-1]
    n_items = train.shape[1]
    model = registry.make(name, **params)
    t0 = time.perf_counter()
    model.fit(train, **accepted_fit_kwargs(model, fit_kwargs))
    fit_seconds = time.perf_counter() - t0
    # One ranking of length CURVE_MAX_K serves every cutoff: top-k is a prefix of top-50.
    res = evaluate(model, train, test, ks=sorted(set(ks) | {CURVE_MAX_K}), slices=segment_slices, diversity=False)
    recs = res.recs
    relevant = test[res.users]
    n_users = len(res.users)
    n_resamples = int(min(1000, max(200, BOOTSTRAP_BUDGET // max(n_users, 1))))

    metrics: dict[str, float] = {}
    ci: dict[str, list[float]] = {}
    for k in ks:
        for m in CI_METRICS:
            key = f"{m}@{k}"
            metrics[key] = res.metrics[key]
            ci[key] = list(mx.bootstrap_ci(res.per_user[key], n_resamples=n_resamples, seed=0))
    top = recs[:, :main_k]
    exposure = mx.exposure(top, n_items)
    beyond = {
        "coverage": mx.catalog_coverage(top, n_items),
        "novelty": float(np.nanmean(mx.novelty(top, popularity, n_train_users))) if n_users else float("nan"),
        "gini": mx.gini_index(exposure),
        "popularity": float(np.nanmean(mx.mean_popularity(top, popularity))) if n_users else float("nan"),
    }
    for key, value in beyond.items():
        metrics[f"{key}@{main_k}"] = value

    curves: dict[str, list[float]] = {m: [] for m in CI_METRICS}
    for k in range(1, CURVE_MAX_K + 1):  # one k at a time: memory stays O(n_users)
        per_user = mx.ranking_metrics(recs[:, :k], relevant, [k])
        for m in CI_METRICS:
            arr = per_user[f"{m}@{k}"]
            curves[m].append(float(np.nanmean(arr)) if n_users else float("nan"))

    wanted = {f"{m}@{k}" for k in ks for m in CI_METRICS}
    slices = {
        slice_name: {"n_users": values["n_users"], **{k: v for k, v in values.items() if k in wanted}}
        for slice_name, values in res.slices.items()
    }
    rec_bins = np.bincount(bin_of_item, weights=exposure, minlength=len(bin_labels))
    return {
        "params": params,
        "model_params": model.get_params() if hasattr(model, "get_params") else params,
        "n_users": n_users,
        "fit_seconds": fit_seconds,
        "recommend_seconds": res.recommend_seconds,
        "metrics": metrics,
        "ci": ci,
        "ci_resamples": n_resamples,
        "beyond": beyond,
        "curves": curves,
        "slices": slices,
        "popularity_bias": {"recommended": _shares(rec_bins), "recommended_counts": rec_bins.tolist()},
    }
