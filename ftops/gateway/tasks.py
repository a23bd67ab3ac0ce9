"""Thin Celery tasks for the gateway: the canary checker, on beat and in the embedded scheduler."""

from __future__ import annotations

from typing import Any

from celery import shared_task


@shared_task(name="ftops.gateway.tasks.canaries_check")
def canaries_check() -> list[dict[str, Any]]:
    """Judge every running canary once (``gateway.canary.canaries_check_all``)."""
    from ftops.gateway.canary import canaries_check_all

    return [{"deployment_id": r.deployment_id, "action": r.action, "share": r.share, "reason": r.reason,
             "decision_id": r.decision_id} for r in canaries_check_all()]
