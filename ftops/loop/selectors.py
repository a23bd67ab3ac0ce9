"""Reads for the loop: recent trigger firings and the dashboard's summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import QuerySet
from django.utils import timezone

from ftops.loop.models import TriggerEvent


def triggers_recent(*, limit: int = 50) -> QuerySet[TriggerEvent]:
    return TriggerEvent.objects.select_related("service").order_by("-created_at", "-id")[:limit]


@dataclass
class LoopSummary:
    recent: list[TriggerEvent] = field(default_factory=list)
    fired_last_7d: int = 0


def loop_summary(*, limit: int = 5, now: datetime | None = None) -> LoopSummary:
    """For the home dashboard: the latest firings and how many fired in the last week (two queries)."""
    now = now or timezone.now()
    return LoopSummary(recent=list(triggers_recent(limit=limit)),
                       fired_last_7d=TriggerEvent.objects.filter(created_at__gte=now - timedelta(days=7)).count())
