"""Celery tasks of the ``evaluation`` queue (routed by module in settings)."""

from __future__ import annotations

from celery import shared_task

from ftops.evaluation import services


@shared_task(acks_late=True)
def eval_run_execute_task(run_id: int) -> None:
    # The run row is the source of truth: a redelivered task finds it claimed and returns.
    services.eval_run_execute(run_id=run_id)
