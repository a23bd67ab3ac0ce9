"""Thin Celery task for the alerts clock: on beat and in the embedded scheduler."""

from __future__ import annotations

from typing import Any

from celery import shared_task


@shared_task(name="ftops.reports.tasks.alerts_tick")
def alerts_tick() -> dict[str, Any]:
    """Stale review queue (once a day), the daily digest (once a day after its hour), last
    month's report (once) -- ``ftops.reports.services.alerts_tick``."""
    from ftops.reports.services import alerts_tick as tick

    return tick()
