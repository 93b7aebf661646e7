"""Reads of the evaluation app for the dashboard. Call inside a store scope (``store_view`` does)."""

from __future__ import annotations

from typing import Any

from analytics.evaluation.models import EvaluationRun, JobStatus, TuningJob, TuningTrial
from shop_recs.training.models import ModelVersion


def recent_runs(limit: int = 25) -> list[EvaluationRun]:
    return list(EvaluationRun.objects.select_related("created_by").defer("results")[:limit])


def finished_runs(limit: int = 50) -> list[EvaluationRun]:
    return list(EvaluationRun.objects.filter(status=JobStatus.SUCCEEDED).defer("results")[:limit])


def get_run(run_id: int) -> EvaluationRun:
    return EvaluationRun.objects.get(pk=run_id)


def recent_tuning_jobs(limit: int = 25) -> list[TuningJob]:
    return list(TuningJob.objects.select_related("created_by")[:limit])


def get_tuning_job(job_id: int) -> TuningJob:
    return TuningJob.objects.get(pk=job_id)


def trials(job: TuningJob) -> list[TuningTrial]:
    return list(TuningTrial.objects.filter(job=job).order_by("algorithm", "position", "pk"))


def _times(row: Any) -> dict[str, Any]:
    return {
        "created_at": row.created_at.isoformat(),
        "started_at": row.started_at.isoformat() if row.started_at else None,
        "finished_at": row.finished_at.isoformat() if row.finished_at else None,
    }


def run_status_payload(run: EvaluationRun) -> dict[str, Any]:
    """What the page polls while a run works (plain JSON from the row, no Celery result store)."""
    return {
        **run.status_payload(),
        **_times(run),
    }


def tuning_status_payload(job: TuningJob) -> dict[str, Any]:
    done = TuningTrial.objects.filter(job=job, status__in=[JobStatus.SUCCEEDED, JobStatus.FAILED]).count()
    return {
        **job.status_payload(),
        "n_trials": job.n_trials,
        "n_done": done,
        "best": job.best,
        **_times(job),
    }


def version_history(limit: int = 200) -> list[dict[str, Any]]:
    """Model versions' holdout metrics, oldest first (the "metrics over time" chart)."""

    rows = ModelVersion.objects.order_by("-created_at", "-pk").values("pk", "algorithm", "created_at", "metrics")[
        :limit
    ]
    return [
        {
            "version": r["pk"],
            "algorithm": r["algorithm"],
            "created_at": r["created_at"].isoformat(),
            "metrics": r["metrics"],
        }
        for r in reversed(list(rows))
    ]
