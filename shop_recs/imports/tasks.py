"""Celery task of dashboard uploads. Thin: the job id in, one service call, the outcome is on the row.

``acks_late`` + ``reject_on_worker_lost``: a worker killed mid-import gets the task redelivered, and
``uploads.run_import_job`` takes the job over at once when the killed process is visibly gone (the
import is all-or-nothing, so running it again from the start is safe).
"""

from __future__ import annotations

from celery import shared_task

from shop_recs.imports import uploads


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_import(job_id: int) -> str:
    return uploads.run_import_job(job_id).status
