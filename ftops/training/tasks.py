"""Celery tasks on the ``training`` queue (routed by settings.CELERY_TASK_ROUTES).

Run one worker per GPU, one task at a time:
    celery -A ftops worker -Q training --concurrency=1 --hostname=gpu0@%h
A long training outlives the broker's visibility timeout on purpose: a redelivered task
finds the run leased (``training_run_claim``, ``ftops.common.jobs``) and returns, so it
never trains twice; the reaper (beat, or the embedded scheduler) re-queues a dead worker's run.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from ftops.training import services


@shared_task(name="ftops.training.tasks.training_run_task", acks_late=True)
def training_run_task(run_id: int) -> dict[str, Any]:
    run = services.training_run_execute(run_id=run_id)
    return {"run_id": run_id, "claimed": run is not None, "status": run.status if run else None}


@shared_task(name="ftops.training.tasks.training_reap_task")
def training_reap_task() -> dict[str, list[int]]:
    return services.training_runs_reap()
