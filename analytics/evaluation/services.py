# Long on purpose: evaluation runs and tuning jobs share their split and scoring helpers; about 20
# lines over the limit, to be split when tuning moves to time-based validation.
"""Writes of the evaluation app: evaluation runs, tuning jobs (parallel trials), promotion, settings.

* :func:`start_evaluation` / :func:`run_evaluation`: split the store's interactions with the chosen
  protocol, optionally tune every algorithm on a validation split carved from TRAIN only, fit on
  train, score on test and store every number the evaluation page draws (``EvaluationRun.results``).
* :func:`start_tuning` -> :func:`prepare_tuning` -> :func:`run_trial` (one Celery task per
  configuration, in parallel) -> :func:`finalise_tuning` (the chord callback): a leaderboard of the
  store's hyperparameter search. :func:`promote_tuning` copies a winner to the store's
  :class:`StoreTrainingConfig`, which :func:`training_config` reads.
* :func:`store_gate_config`: the store's default for the training activation gate.

Like ``recommend.services.run_training``, the ``run_*`` functions never raise for a failure of the
job itself: they record it on the row (status, error) and the dashboard shows it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from celery import chord, group
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from analytics.evaluation.models import EvaluationRun, Protocol, TuningJob, TuningTrial
from analytics.models import CustomerProfile, Segment
from shop_recs.catalog.models import Product
from shop_recs.platform import jobs
from shop_recs.platform.jobs import JobProgress, JobStatus, json_safe
from shop_recs.recsys import metrics as mx
from shop_recs.recsys import registry
from shop_recs.recsys.evaluate import evaluate
from shop_recs.recsys.splits import Split, make_split, pair_timestamps, validation_split
from shop_recs.recsys.tuning import accepted_fit_kwargs, candidate_configs, tune
from shop_recs.stores.models import Store
from shop_recs.stores.scoping import store_scope
from shop_recs.training.matrix import build_interactions
from shop_recs.training.models import StoreTrainingConfig

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


def _validate(algorithms: Iterable[str], protocol: str) -> list[str]:
    algorithms = list(dict.fromkeys(algorithms))
    if not algorithms:
        raise ValueError("choose at least one algorithm")
    unknown = [a for a in algorithms if a not in registry.ALGORITHMS]
    if unknown:
        raise ValueError(f"unknown algorithm(s): {', '.join(unknown)}")
    if protocol not in Protocol.values:
        raise ValueError(f"unknown protocol {protocol!r}")
    return algorithms


def _user(user: Any) -> Any:
    return user if getattr(user, "is_authenticated", False) else None


# --- settings and training configuration ---------------------------------------------------------


def promote_tuning(job: TuningJob, user: Any = None, algorithm: str | None = None) -> StoreTrainingConfig:
    """Make ``algorithm`` (default: the job's best) with its best parameters the store's training config.

    Every tuned algorithm's best parameters are kept in ``params`` (training reads only the listed
    algorithms' entries), and existing ``_matrix``/``_gate`` settings are preserved.
    """
    if job.status != JobStatus.SUCCEEDED or not job.leaderboard:
        raise EvaluationError("only a finished tuning job with a leaderboard can be promoted")
    algorithm = algorithm or job.best
    if algorithm not in job.leaderboard:
        raise EvaluationError(f"{algorithm!r} is not on this job's leaderboard")
    store = job.store
    with store_scope(store), transaction.atomic():
        row = StoreTrainingConfig.objects.select_for_update().filter(store=store).first()
        params = dict(row.params) if row else {}
        for name, entry in job.leaderboard.items():
            params[name] = dict(entry.get("params") or {})
        values = {"algorithms": [algorithm], "params": params, "source_job": job, "updated_by": _user(user)}
        if row is None:
            row = StoreTrainingConfig.objects.create(store=store, **values)
        else:
            for key, value in values.items():
                setattr(row, key, value)
            row.save()
        TuningJob.objects.filter(pk=job.pk).update(promoted_at=timezone.now(), promoted_by=_user(user))
    return row


def _load_split(store: Store, protocol: str, protocol_params: dict[str, Any]) -> tuple[Any, Split]:
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


def _side_info(data: Any, item_ids: np.ndarray) -> dict[str, Any]:
    """Item texts and categories aligned with a split's columns (a subset of the store's items)."""
    col = {pk: i for i, pk in enumerate(np.asarray(data.item_ids).tolist())}
    pos = np.array([col[pk] for pk in np.asarray(item_ids).tolist()], dtype=np.int64)
    return {"item_features": [data.item_texts[i] for i in pos], "item_categories": data.item_categories[pos]}


def _fit_kwargs(side: dict[str, Any], split: Split) -> dict[str, Any]:
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
    algorithms = _validate(algorithms, protocol)
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
            created_by=_user(user),
        )
        if enqueue:
            # tasks.py imports this module for its task bodies: importing it at the top would be a cycle.
            from analytics.evaluation.tasks import run_evaluation_task

            jobs.enqueue_on_commit(run_evaluation_task, run)
    return run


def run_evaluation(run_id: int, on_progress: Callable[[str, int], None] | None = None) -> EvaluationRun:
    """The body of the evaluation task. Records success or failure on the row; never raises for it."""
    run = EvaluationRun.all_stores.select_related("store").get(pk=run_id)
    if not jobs.claim(run):
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
    data, split = _load_split(store, run.protocol, run.protocol_params)
    progress.stage("preparing slices", 10)
    segment_slices, segment_labels = _segment_slices(split)
    side = _side_info(data, split.item_ids)
    fit_kwargs = _fit_kwargs(side, split)
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
            val_kwargs = _fit_kwargs(side, valid_split)
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


# --- tuning jobs ---------------------------------------------------------------------------------


def tuning_dir() -> Path:
    """Where a job's validation split waits for its trial tasks (shared by web and workers, like MODEL_DIR)."""
    return Path(settings.TUNING_DIR)


def _split_path(job_id: int) -> Path:
    return tuning_dir() / f"job{job_id}.npz"


def start_tuning(
    store: Store,
    algorithms: Iterable[str],
    protocol: str = Protocol.TEMPORAL,
    protocol_params: dict[str, Any] | None = None,
    metric: str = "ndcg@10",
    user: Any = None,
    *,
    n_iter: int = 20,
    grids: dict[str, dict[str, list[Any]]] | None = None,
    enqueue: bool = True,
) -> TuningJob:
    """Create a queued tuning job; its first task builds the validation split and fans out the trials.

    ``grids`` overrides ``registry.DEFAULT_GRIDS`` per algorithm (the form never sets it).
    """
    algorithms = _validate(algorithms, protocol)
    name, _, k = metric.partition("@")
    if name not in mx.RANKING_METRICS or not k.isdigit() or not 1 <= int(k) <= CURVE_MAX_K:
        raise ValueError(f"unknown metric {metric!r}")
    grids = {a: (grids or {}).get(a, registry.DEFAULT_GRIDS.get(a, {})) for a in algorithms}
    with store_scope(store), transaction.atomic():
        job = TuningJob.objects.create(
            store=store,
            algorithms=algorithms,
            protocol=protocol,
            protocol_params=json_safe(dict(protocol_params or {})),
            metric=metric,
            n_iter=n_iter,
            grids=json_safe(grids),
            created_by=_user(user),
        )
        if enqueue:
            # tasks.py imports this module for its task bodies: importing it at the top would be a cycle.
            from analytics.evaluation.tasks import prepare_tuning_task

            jobs.enqueue_on_commit(prepare_tuning_task, job)
    return job


def prepare_tuning(job_id: int) -> list[int]:
    """Build and save the validation split, create one trial row per configuration; returns trial ids.

    The job's holdout under its protocol IS the validation set: a tuning job picks the configuration
    production training will use on all data, so there is no test set to protect (an evaluation run
    with ``auto_tune`` is the unbiased way to measure tuned models: it tunes on train only).
    """
    job = TuningJob.all_stores.select_related("store").get(pk=job_id)
    if not jobs.claim(job):
        return []
    progress = JobProgress(job)
    try:
        with store_scope(job.store):
            progress.stage("loading data", 2)
            data, split = _load_split(job.store, job.protocol, job.protocol_params)
            progress.stage("saving validation split", 6)
            _save_split(job.pk, split, _fit_kwargs(_side_info(data, split.item_ids), split))
            configs = {
                algo: candidate_configs(job.grids.get(algo) or {}, n_iter=job.n_iter, seed=0) for algo in job.algorithms
            }
            trials = TuningTrial.objects.bulk_create(
                [
                    TuningTrial(store=job.store, job=job, algorithm=algo, params=json_safe(cfg), position=i)
                    for algo, cfgs in configs.items()
                    for i, cfg in enumerate(cfgs)
                ]
            )
            progress.stage("running trials", 10)
            TuningJob.all_stores.filter(pk=job.pk).update(
                n_trials=len(trials),
                split_info=json_safe({**split.info, "protocol": split.protocol, "params": split.params}),
                timings=progress.timings,
            )
            return [t.pk for t in trials]
    except Exception as exc:  # noqa: BLE001
        logger.exception("tuning job %s failed while preparing", job.pk)
        jobs.fail(job, exc, timings=progress.finish())
        _split_path(job.pk).unlink(missing_ok=True)
        return []


def _save_split(job_id: int, split: Split, fit_kwargs: dict[str, Any]) -> None:
    train = sp.csr_matrix(split.train, dtype=np.float32)
    test = sp.csr_matrix(split.test, dtype=np.float32)
    arrays: dict[str, np.ndarray] = {
        "train_data": train.data,
        "train_indices": train.indices,
        "train_indptr": train.indptr,
        "test_data": test.data,
        "test_indices": test.indices,
        "test_indptr": test.indptr,
        "shape": np.asarray(train.shape, dtype=np.int64),
        "item_features": np.asarray(fit_kwargs["item_features"], dtype=str),
        "item_categories": np.asarray(fit_kwargs["item_categories"], dtype=np.int64),
    }
    if fit_kwargs.get("timestamps") is not None:
        arrays["timestamps"] = np.asarray(fit_kwargs["timestamps"], dtype=np.int64)
    path = _split_path(job_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    tmp.replace(path)  # trials never see a half-written file


def _read_split(job_id: int) -> tuple[sp.csr_matrix, sp.csr_matrix, dict[str, Any]]:
    with np.load(_split_path(job_id), allow_pickle=False) as f:
        shape = tuple(int(x) for x in f["shape"])
        train = sp.csr_matrix((f["train_data"], f["train_indices"], f["train_indptr"]), shape=shape)
        test = sp.csr_matrix((f["test_data"], f["test_indices"], f["test_indptr"]), shape=shape)
        kwargs = {
            "item_features": [str(s) for s in f["item_features"].tolist()],
            "item_categories": f["item_categories"],
            "timestamps": f["timestamps"] if "timestamps" in f.files else None,
        }
    return train, test, kwargs


def dispatch_trials(job_id: int, trial_ids: list[int]) -> str:
    """Run the trials in parallel: a Celery ``chord`` (group of trial tasks + finalising callback).

    A chord needs a result backend to know when the group is done. Without one (and not eager) the
    trials run as a plain ``group`` and the last trial to finish finalises the job instead.
    """
    # tasks.py imports this module for its task bodies: importing it at the top would be a cycle.
    from analytics.evaluation import tasks

    if not trial_ids:
        return ""
    app = tasks.run_tuning_trial.app
    backend = app.conf.result_backend
    use_chord = bool(app.conf.task_always_eager) or bool(backend and backend != "disabled")
    mode = "chord" if use_chord else "group"
    TuningJob.all_stores.filter(pk=job_id).update(dispatch=mode)
    if use_chord:
        chord([tasks.run_tuning_trial.si(t) for t in trial_ids])(tasks.finalise_tuning_task.si(job_id))
    else:
        group([tasks.run_tuning_trial.si(t, True) for t in trial_ids]).apply_async()
    return mode


def run_trial(trial_id: int, finalise_when_last: bool = False) -> TuningTrial:
    """Fit one configuration on the validation train part and score the job's metric on its test part."""
    trial = TuningTrial.all_stores.select_related("job").get(pk=trial_id)
    job = trial.job
    claimed = TuningTrial.all_stores.filter(pk=trial.pk, status=JobStatus.QUEUED).update(status=JobStatus.RUNNING)
    if claimed and job.status == JobStatus.RUNNING:
        t0 = time.perf_counter()
        values: dict[str, Any] = {}
        try:
            train, test, fit_kwargs = _read_split(job.pk)
            model = registry.make(trial.algorithm, **trial.params)
            model.fit(train, **accepted_fit_kwargs(model, fit_kwargs))
            values["fit_seconds"] = time.perf_counter() - t0
            k = int(job.metric.split("@")[1])
            users = np.flatnonzero(np.diff(test.indptr) > 0)
            res = evaluate(model, train, test, ks=[k], users=users, diversity=False)
            score = float(res.metrics[job.metric])
            values.update(status=JobStatus.SUCCEEDED, score=score if math.isfinite(score) else None)
        except Exception as exc:  # noqa: BLE001 - a broken configuration must not end the search
            logger.warning("tuning trial %s (%s %s) failed: %s", trial.pk, trial.algorithm, trial.params, exc)
            values.update(status=JobStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000])
        values.update(seconds=time.perf_counter() - t0, finished_at=timezone.now())
        TuningTrial.all_stores.filter(pk=trial.pk).update(**values)
    elif claimed:  # the job already failed: nothing to compute
        TuningTrial.all_stores.filter(pk=trial.pk).update(status=JobStatus.FAILED, error="job is not running")
    _record_trial_progress(job.pk)
    if finalise_when_last and not _open_trials(job.pk).exists():
        finalise_tuning(job.pk)
    trial.refresh_from_db()
    return trial


def _open_trials(job_id: int):
    return TuningTrial.all_stores.filter(job_id=job_id, status__in=[JobStatus.QUEUED, JobStatus.RUNNING])


def _record_trial_progress(job_id: int) -> None:
    total = TuningTrial.all_stores.filter(job_id=job_id).count()
    done = total - _open_trials(job_id).count()
    TuningJob.all_stores.filter(pk=job_id, status=JobStatus.RUNNING).update(
        progress=10 + int(85 * done / max(total, 1)), heartbeat_at=timezone.now(), stage="running trials"
    )


def leaderboard(trials: Iterable[TuningTrial], algorithms: list[str]) -> dict[str, dict[str, Any]]:
    """Best trial per algorithm: highest score, ties to the earlier configuration (defaults come first)."""
    by_algo: dict[str, list[TuningTrial]] = {a: [] for a in algorithms}
    for t in trials:
        by_algo.setdefault(t.algorithm, []).append(t)
    board: dict[str, dict[str, Any]] = {}
    for algo, rows in by_algo.items():
        scored = [t for t in rows if t.status == JobStatus.SUCCEEDED and t.score is not None]
        if not scored:
            continue
        best = max(scored, key=lambda t: (t.score, -t.position, -t.pk))
        board[algo] = {
            "trial": best.pk,
            "params": best.params,
            "score": best.score,
            "n_trials": len(rows),
            "n_failed": sum(1 for t in rows if t.status == JobStatus.FAILED),
        }
    return board


def finalise_tuning(job_id: int) -> TuningJob:
    """The chord callback: compute the leaderboard and finish the job (idempotent)."""
    job = TuningJob.all_stores.get(pk=job_id)
    if job.status != JobStatus.RUNNING:
        return job
    trials = list(TuningTrial.all_stores.filter(job_id=job_id))
    board = leaderboard(trials, list(job.algorithms))
    timings = dict(job.timings or {})
    if job.started_at:
        timings["total"] = round((timezone.now() - job.started_at).total_seconds(), 4)
    if board:
        best = max(board, key=lambda a: (board[a]["score"], -job.algorithms.index(a) if a in job.algorithms else 0))
        jobs.succeed(job, timings=timings, leaderboard=json_safe(board), best=best)
    else:
        errors = sorted({t.error.splitlines()[0] for t in trials if t.error})[:3]
        message = "Every trial failed. " + "; ".join(errors)
        jobs.fail(job, message, timings=timings, leaderboard=json_safe(board), stage="", progress=100)
    _split_path(job_id).unlink(missing_ok=True)
    job.refresh_from_db()
    return job
