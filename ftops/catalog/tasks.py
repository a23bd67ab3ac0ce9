"""Thin Celery tasks for the catalog (``default`` queue): ids in, one service call."""

from __future__ import annotations

from typing import Any

from celery import shared_task


@shared_task(name="ftops.catalog.tasks.catalog_import_job_task")
def catalog_import_job_task(job_id: int) -> str | None:
    """Run one URL import job. A second delivery finds the job claimed or finished and does nothing."""
    from ftops.catalog.services import catalog_import_job_run

    job = catalog_import_job_run(job_id=job_id)
    return job.status if job is not None else None


@shared_task(name="ftops.catalog.tasks.catalog_import_jobs_reap_task")
def catalog_import_jobs_reap_task() -> dict[str, Any]:
    from ftops.catalog.services import catalog_import_jobs_reap

    return catalog_import_jobs_reap()
