"""Reads for the loop: recent trigger firings, the dashboard's summary, cycles and their timelines."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from ftops.loop.models import Cycle, CycleStage, CycleStatus, HygieneRun, TriggerEvent


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


def cycles_attention(*, days: int = 7, now: datetime | None = None) -> dict[str, int]:
    """For the home dashboard's inbox: cycles running now, and those that failed in the last
    ``days`` days (one grouped query on the status index)."""
    now = now or timezone.now()
    out = {"running": 0, "failed": 0}
    rows = (Cycle.objects.filter(Q(status=CycleStatus.RUNNING)
                                 | Q(status=CycleStatus.FAILED, created_at__gte=now - timedelta(days=days)))
            .values_list("status").order_by().annotate(n=Count("*")))
    for status, n in rows:
        out["running" if status == CycleStatus.RUNNING else "failed"] += n
    return out


def cycles_recent(*, limit: int = 50) -> QuerySet[Cycle]:
    return Cycle.objects.select_related("service").prefetch_related("stages").order_by("-created_at", "-id")[:limit]


@dataclass
class StageRow:
    """One line of a cycle's timeline: a planned stage, or the job that ran it."""

    name: str
    label: str
    stage: CycleStage | None
    links: list[tuple[str, str]] = field(default_factory=list)  # (text, url)

    @property
    def status(self) -> str:
        return self.stage.status if self.stage is not None else "planned"


def _url(name: str, *args: object) -> str:
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return ""


def _stage_links(links: dict[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if links.get("aggregation_run"):
        out.append((f"aggregation run {str(links['aggregation_run'])[:8]} ({links.get('aggregated', 0)} new)", ""))
    if "curation_run" in links:
        out.append((f"curation run {links['curation_run']}", ""))
    if "dataset_version_number" in links:
        n = links["dataset_version_number"]
        out.append((f"dataset v{n}", _url("datasets:version", n)))
    if "training_run" in links:
        out.append((f"training run {links['training_run']}", _url("training:run", links["training_run"])))
    if "model_version" in links:
        out.append((f"model version {links['model_version']}", _url("registry:version", links["model_version"])))
    for key in ("eval_run", "baseline_eval_run"):
        if links.get(key):
            out.append((f"{key.replace('_', ' ')} {links[key]}", _url("evaluation:run", links[key])))
    if "gate_report" in links:
        out.append((f"gate report {links['gate_report']}", ""))
    if "deployment" in links:
        out.append((f"deployment {links['deployment']}", ""))
    return out


def cycle_timeline(cycle: Cycle) -> list[StageRow]:
    from ftops.loop.cycles import STAGES

    rows = {s.name: s for s in cycle.stages.all()}
    return [StageRow(name=name, label=label, stage=rows.get(name),
                     links=_stage_links(rows[name].links if name in rows else {})) for name, label in STAGES]


def hygiene_runs_recent(*, limit: int = 10) -> QuerySet[HygieneRun]:
    return HygieneRun.objects.select_related("dataset_version").order_by("-created_at", "-id")[:limit]
