"""Reads of the training lifecycle for the Jobs page and (later) serving. Call inside a store scope."""

from __future__ import annotations

from typing import Any

from shop_recs.training.models import ACTIVE_RUN_STATUSES, ModelVersion, TrainingRun


def recent_runs(limit: int = 25) -> list[TrainingRun]:
    return list(TrainingRun.objects.select_related("created_by").prefetch_related("versions")[:limit])


def current_run() -> TrainingRun | None:
    """The queued or running run that holds the store's training lock, if any."""
    return TrainingRun.objects.filter(status__in=ACTIVE_RUN_STATUSES).first()


def active_version() -> ModelVersion | None:
    return ModelVersion.objects.filter(is_active=True).select_related("run").first()


def versions(limit: int = 50) -> list[ModelVersion]:
    return list(ModelVersion.objects.select_related("run")[:limit])


def get_run(run_id: int) -> TrainingRun:
    return TrainingRun.objects.get(pk=run_id)


def run_status_payload(run: TrainingRun) -> dict[str, Any]:
    """What the Jobs page polls: plain JSON, no Celery result store involved."""
    return {
        **run.status_payload(),
        "metrics": run.metrics,
        "gate": run.gate,
        "created_at": run.created_at.isoformat(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }
