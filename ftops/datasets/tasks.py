"""Thin Celery tasks on the ``curation`` queue: ids in, one service call."""

from __future__ import annotations

from typing import Any

from celery import shared_task


@shared_task(name="ftops.datasets.tasks.dataset_version_build_task")
def dataset_version_build_task(version_id: int) -> int:
    from ftops.datasets.services import dataset_version_execute

    return dataset_version_execute(version_id=version_id).pk


@shared_task(name="ftops.datasets.tasks.curation_run_task")
def curation_run_task(run_id: int) -> dict[str, Any]:
    from ftops.datasets.services.runs import curation_run_execute

    return curation_run_execute(run_id=run_id).result


@shared_task(name="ftops.datasets.tasks.curation_scheduled")
def curation_scheduled() -> int:
    """Celery beat: collect production examples, then evaluate the retraining triggers."""
    from ftops.datasets.services.runs import curation_run_start

    return curation_run_start(kind="scheduled").pk
