"""Thin Celery tasks on the ``curation`` queue: ids in, one service call.

Builds and curation runs are jobs (``ftops.common.jobs``): the task only claims and runs the
row. A transient database error gave the row back before it reached here, so it is retried;
any other error has already failed the row.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from ftops.common.jobs import TRANSIENT_ERRORS


@shared_task(name="ftops.datasets.tasks.dataset_version_build_task", autoretry_for=TRANSIENT_ERRORS,
             retry_backoff=True, max_retries=5)
def dataset_version_build_task(version_id: int) -> int:
    from ftops.datasets.services import dataset_version_execute

    return dataset_version_execute(version_id=version_id).pk


@shared_task(name="ftops.datasets.tasks.curation_run_task", autoretry_for=TRANSIENT_ERRORS,
             retry_backoff=True, max_retries=5)
def curation_run_task(run_id: int) -> dict[str, Any]:
    from ftops.datasets.services.runs import curation_run_execute

    return curation_run_execute(run_id=run_id).result


@shared_task(name="ftops.datasets.tasks.curation_scheduled")
def curation_scheduled() -> int:
    """Celery beat: collect production examples, then evaluate the retraining triggers."""
    from ftops.datasets.services.runs import curation_run_start

    return curation_run_start(kind="scheduled").pk


@shared_task(name="ftops.datasets.tasks.dataset_jobs_reap_task")
def dataset_jobs_reap_task() -> dict[str, Any]:
    """Beat (and the embedded scheduler): re-queue builds and curation runs a dead worker left."""
    from ftops.datasets.services.runs import curation_runs_reap
    from ftops.datasets.services.versions import dataset_versions_reap

    return {"dataset_versions": dataset_versions_reap(), "curation_runs": curation_runs_reap()}


@shared_task(name="ftops.datasets.tasks.catalog_import_examples_task")
def catalog_import_examples_task(job_id: int) -> str | None:
    """A catalog documents import (sent by name from the catalog): tools and examples together.
    A second delivery finds the job claimed or finished and does nothing."""
    from ftops.datasets.services.catalog_imports import catalog_import_examples_run

    job = catalog_import_examples_run(job_id=job_id)
    return job.status if job is not None else None


@shared_task(name="ftops.datasets.tasks.examples_migrate_schema_task")
def examples_migrate_schema_task(tool_ids: list[int], actor: str = "", job_id: int | None = None) -> dict[str, int]:
    """Move the older examples of tools whose schema a catalog import changed (sent by name).

    With a broker this runs after the import committed, so the counts go onto the import's
    job (the catalog passes ``job_id`` only then) instead of the import's response.
    """
    from ftops.datasets.services.schema_evolution import examples_migrate_tools

    counts = examples_migrate_tools(tool_ids=tool_ids, actor=actor)
    if job_id is not None:
        from ftops.catalog.services import catalog_import_job_record_migration

        catalog_import_job_record_migration(job_id=job_id, migrated=counts["migrated"], flagged=counts["flagged"])
    return counts
