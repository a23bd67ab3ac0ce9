"""Thin Celery tasks for the loop (routed to the ``curation`` queue: the checks embed failures)."""

from __future__ import annotations

from typing import Any

from celery import shared_task


@shared_task(name="ftops.loop.tasks.triggers_evaluate_task")
def triggers_evaluate_task(curation_run_id: int | None = None) -> dict[str, Any]:
    """Sent by name by a datasets curation run (``triggers``/``scheduled``), or run on its own."""
    from ftops.loop.services import triggers_evaluate, triggers_evaluate_for_curation_run

    if curation_run_id is not None:
        return triggers_evaluate_for_curation_run(curation_run_id=curation_run_id).report
    return triggers_evaluate().as_dict()
