"""Thin Celery tasks for the loop (routed to the ``curation`` queue: the checks embed failures)."""

from __future__ import annotations

from typing import Any

from celery import shared_task


@shared_task(name="ftops.loop.tasks.triggers_evaluate_task")
def triggers_evaluate_task(curation_run_id: int | None = None) -> dict[str, Any]:
    """Sent by name by a datasets curation run (``triggers``/``scheduled``), or run on its own."""
    from ftops.loop.cycles import cycles_start_for_triggers
    from ftops.loop.services import triggers_evaluate, triggers_evaluate_for_curation_run

    if curation_run_id is not None:
        report = triggers_evaluate_for_curation_run(curation_run_id=curation_run_id).report
    else:
        report = triggers_evaluate().as_dict()
    # Firings start cycles (or wait for the scope's cycle in flight, or its cooldown).
    started = cycles_start_for_triggers()
    report["cycles_started"] = [c.pk for c in started.started]
    report["cycles_waiting"] = started.waiting
    return report


@shared_task(name="ftops.loop.tasks.cycle_stage_task")
def cycle_stage_task(stage_id: int) -> dict[str, Any]:
    """Run one cycle stage (sent by name once the previous stage, or the cycle's start, committed)."""
    from ftops.loop.cycles import cycle_stage_execute

    stage = cycle_stage_execute(stage_id=stage_id)
    return {"stage": stage_id, "status": stage.status if stage else "held elsewhere"}


@shared_task(name="ftops.loop.tasks.cycles_tick_task")
def cycles_tick_task() -> dict[str, Any]:
    """The loop's clock (beat, or the served process's scheduler thread): reap stages, start the
    scheduled cycle when its slot came, start cycles for waiting trigger firings."""
    from ftops.loop.cycles import cycles_tick

    return cycles_tick()
