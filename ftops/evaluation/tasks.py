"""Celery tasks of the ``evaluation`` queue (routed by module in settings)."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from ftops.common.jobs import TRANSIENT_ERRORS
from ftops.evaluation import services


@shared_task(acks_late=True, autoretry_for=TRANSIENT_ERRORS, retry_backoff=True, max_retries=5)
def eval_run_execute_task(run_id: int) -> None:
    # The run row is the source of truth (ftops.common.jobs): a redelivered task finds it
    # claimed and returns; only a transient database error (the run given back) is retried.
    services.eval_run_execute(run_id=run_id)


@shared_task(name="ftops.evaluation.tasks.eval_runs_reap_task")
def eval_runs_reap_task() -> dict[str, Any]:
    """Beat (and the embedded scheduler): re-queue runs a dead worker left, send lost ones again."""
    return services.eval_runs_reap()
