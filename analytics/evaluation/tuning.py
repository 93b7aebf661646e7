"""Tuning jobs: a store's hyperparameter search as parallel Celery trials, and promoting a winner.

:func:`start_tuning` -> :func:`prepare_tuning` -> :func:`run_trial` (one Celery task per
configuration, in parallel) -> :func:`finalise_tuning` (the chord callback): a leaderboard of the
store's search. :func:`promote_tuning` copies a winner to the store's ``StoreTrainingConfig``, which
``training.config.training_config`` reads. Like the evaluation runs, the task bodies never raise for
a failure of the job itself: they record it on the row.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from celery import chord, group
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from analytics.evaluation.models import Protocol, TuningJob, TuningTrial
from analytics.evaluation.services import (
    CURVE_MAX_K,
    EvaluationError,
    acting_user,
    fit_kwargs_for,
    load_split,
    side_info,
    validate_algorithms,
)
from shop_recs.platform import jobs
from shop_recs.platform.jobs import JobProgress, JobStatus, json_safe
from shop_recs.recsys import metrics as mx
from shop_recs.recsys import registry
from shop_recs.recsys.evaluate import evaluate
from shop_recs.recsys.splits import Split
from shop_recs.recsys.tuning import accepted_fit_kwargs, candidate_configs
from shop_recs.stores.models import Store
from shop_recs.stores.scoping import store_scope
from shop_recs.training.models import StoreTrainingConfig

logger = logging.getLogger(__name__)


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
    algorithms = validate_algorithms(algorithms, protocol)
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
            created_by=acting_user(user),
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
            data, split = load_split(job.store, job.protocol, job.protocol_params)
            progress.stage("saving validation split", 6)
            _save_split(job.pk, split, fit_kwargs_for(side_info(data, split.item_ids), split))
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
            _save_per_user(job.pk, trial.pk, res.per_user[job.metric])
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


def _per_user_path(job_id: int, trial_id: int) -> Path:
    return tuning_dir() / f"job{job_id}.trial{trial_id}.npy"


def _save_per_user(job_id: int, trial_id: int, values: np.ndarray) -> None:
    """Keep a trial's per-user validation metric for the one-SE rule at the end (the trial row has
    only the mean); removed with the job's split."""
    path = _per_user_path(job_id, trial_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.asarray(values, dtype=np.float64), allow_pickle=False)


def _load_per_user(job_id: int, trials: Iterable[TuningTrial]) -> dict[int, np.ndarray]:
    out: dict[int, np.ndarray] = {}
    for t in trials:
        path = _per_user_path(job_id, t.pk)
        if path.exists():
            out[t.pk] = np.load(path, allow_pickle=False)
    return out


def leaderboard(
    trials: Iterable[TuningTrial], algorithms: list[str], per_user: dict[int, np.ndarray] | None = None
) -> dict[str, dict[str, Any]]:
    """The chosen trial per algorithm. With every scored trial's per-user values (``per_user`` by
    trial id) it is the engine's one-standard-error rule (the bench's selection: the defaults or the
    most regularised configuration within one bootstrap SE of the best); otherwise the highest
    score, ties to the earlier configuration (defaults come first)."""
    from shop_recs.recsys.selection import interval, one_standard_error  # why: only the leaderboard uses it

    by_algo: dict[str, list[TuningTrial]] = {a: [] for a in algorithms}
    for t in trials:
        by_algo.setdefault(t.algorithm, []).append(t)
    board: dict[str, dict[str, Any]] = {}
    for algo, rows in by_algo.items():
        scored = [t for t in rows if t.status == JobStatus.SUCCEEDED and t.score is not None]
        if not scored:
            continue
        best = max(scored, key=lambda t: (t.score, -t.position, -t.pk))
        entry: dict[str, Any] = {"selection": {"rule": "max"}}
        if per_user and all(t.pk in per_user for t in scored) and len(scored) > 1:
            ordered = sorted(scored, key=lambda t: (t.position, t.pk))
            pick, record = one_standard_error(algo, [{"params": t.params, "per_user": per_user[t.pk]} for t in ordered])
            best = ordered[pick]
            entry = {"selection": record, "interval": interval(per_user[best.pk])}
        board[algo] = {
            "trial": best.pk,
            "params": best.params,
            "score": best.score,
            "n_trials": len(rows),
            "n_failed": sum(1 for t in rows if t.status == JobStatus.FAILED),
            **entry,
        }
    return board


def finalise_tuning(job_id: int) -> TuningJob:
    """The chord callback: compute the leaderboard and finish the job (idempotent)."""
    job = TuningJob.all_stores.get(pk=job_id)
    if job.status != JobStatus.RUNNING:
        return job
    trials = list(TuningTrial.all_stores.filter(job_id=job_id))
    per_user = _load_per_user(job_id, trials)
    board = leaderboard(trials, list(job.algorithms), per_user)
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
    for t in trials:
        _per_user_path(job_id, t.pk).unlink(missing_ok=True)
    job.refresh_from_db()
    return job


# --- promotion -----------------------------------------------------------------------------------


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
        values = {"algorithms": [algorithm], "params": params, "source_job": job, "updated_by": acting_user(user)}
        if row is None:
            row = StoreTrainingConfig.objects.create(store=store, **values)
        else:
            for key, value in values.items():
                setattr(row, key, value)
            row.save()
        TuningJob.objects.filter(pk=job.pk).update(promoted_at=timezone.now(), promoted_by=acting_user(user))
    return row
