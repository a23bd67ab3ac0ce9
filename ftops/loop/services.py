"""Retraining triggers, evaluated on a schedule; each firing leaves a ``TriggerEvent`` saying why.

They live in the loop (the top floor) because they read rows from several floors below:
datasets' examples, interactions' failures and evaluation's runs.

- ``high_quality_examples``: at least ``curation.min_examples`` new *trainable* examples for a
  service since its last such trigger. Trainable means active and either
  - rated ``high`` (curated, corrected or imported examples), or
  - **production-validated**: ``source=production`` (collected from live traffic, which always
    enters as ``medium``) whose interaction is still a schema-valid success (``call_verdict``
    valid, not a failure) that the user rated at least ``curation.quality_threshold`` (rounded
    up, as collection does). Collection applies the same bar, but its schema check can be
    switched off (``filters.schema_valid_calls_only``) and an interaction can be re-marked a
    failure after collection; the trigger re-checks the interaction so neither slips through.
  Without the second kind the trigger never fired on traffic alone.
- ``error_pattern``: at least ``triggers.error_pattern_min_failures`` similar failures: same
  service, tool and failure kind, and one cluster of the requests' embeddings (cosine >=
  ``error_pattern_similarity``), counted since the last trigger for that group.
- ``stale_accuracy``: no accuracy gain in ``stale_accuracy_days`` days, read from evaluation
  runs; skipped with a reason when there is no run old enough to compare with.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.db import transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from ftops.catalog.models import Service
from ftops.common.actors import Actor
from ftops.common.models import AuditAction
from ftops.common.services import audit_record
from ftops.datasets.config import CurationConfig, load_config
from ftops.datasets.dedup import components, similar_pairs
from ftops.datasets.embeddings import Embedder
from ftops.datasets.filters import normalise_calls
from ftops.datasets.models import ExampleStatus, Quality, Source, TrainingExample
from ftops.datasets.splitting import mask_entities
from ftops.evaluation.models import EvalRun
from ftops.interactions.models import CallVerdict, Interaction
from ftops.loop.models import TriggerEvent, TriggerKind


@dataclass
class TriggerReport:
    fired: list[TriggerEvent] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "fired": [{"id": e.pk, "kind": e.kind, "reason": e.reason} for e in self.fired],
            "skipped": dict(self.skipped),
        }


def _fire(
    kind: str, *, service: Service | None, fingerprint: str, reason: str, details: dict[str, Any], by: Actor
) -> TriggerEvent:
    event = TriggerEvent.objects.create(kind=kind, service=service, fingerprint=fingerprint, reason=reason,
                                        details=details)
    # A firing is what starts a retraining: the audit log says who (or which schedule) asked.
    audit_record(action=AuditAction.RETRAINING_TRIGGER_FIRED, by=by, object_type="trigger_event",
                 object_id=event.pk, detail={"kind": kind, "fingerprint": fingerprint,
                                             "service": service.name if service else None})
    return event


def _last_fired(kind: str) -> dict[str, datetime]:
    rows = TriggerEvent.objects.filter(kind=kind).values("fingerprint").annotate(at=Max("created_at"))
    return {r["fingerprint"]: r["at"] for r in rows}


def production_validated(cfg: CurationConfig) -> Q:
    """Production examples whose interaction is a schema-valid success rated >= the quality threshold."""
    return Q(source=Source.PRODUCTION, interaction__is_failure=False, interaction__success=True,
             interaction__call_verdict=CallVerdict.VALID,
             interaction__user_feedback__gte=math.ceil(cfg.quality_threshold))


def trainable_examples(cfg: CurationConfig) -> Q:
    """What the new-examples trigger counts: active, and high quality or production-validated."""
    return Q(status=ExampleStatus.ACTIVE) & (Q(quality=Quality.HIGH) | production_validated(cfg))


def _check_high_quality(cfg: CurationConfig, report: TriggerReport, by: Actor) -> None:
    last = _last_fired(TriggerKind.HIGH_QUALITY_EXAMPLES)
    high, validated = Q(quality=Quality.HIGH), production_validated(cfg)
    for service in Service.objects.order_by("name"):
        fingerprint = f"service:{service.name}"
        qs = TrainingExample.objects.filter(trainable_examples(cfg), service=service)
        since = last.get(fingerprint)
        if since is not None:
            qs = qs.filter(created_at__gt=since)
        # One query per service: the total and the two kinds (an example can be both).
        counts = qs.aggregate(count=Count("id"), high=Count("id", filter=high),
                              validated=Count("id", filter=validated))
        count = counts["count"]
        if count >= cfg.min_examples:
            report.fired.append(_fire(
                TriggerKind.HIGH_QUALITY_EXAMPLES, service=service, fingerprint=fingerprint,
                reason=f"{count} new high-quality examples for {service.name} "
                       f"({counts['high']} rated high, {counts['validated']} production-validated; "
                       f"threshold {cfg.min_examples}) since {since.isoformat() if since else 'the start'}",
                details={"count": count, "high_quality": counts["high"],
                         "production_validated": counts["validated"], "threshold": cfg.min_examples,
                         "since": since.isoformat() if since else None},
                by=by,
            ))


def _failure_tool(interaction: Interaction) -> str:
    calls = normalise_calls(interaction.tool_calls)
    return calls[0]["name"] if calls else ""


def _check_error_patterns(cfg: CurationConfig, report: TriggerReport, now: datetime, embedder: Embedder,
                          by: Actor) -> None:
    tc = cfg.triggers
    last = _last_fired(TriggerKind.ERROR_PATTERN)
    failures = (
        Interaction.objects.filter(is_failure=True, timestamp__gte=now - timedelta(days=tc.lookback_days))
        .select_related("service")
        .order_by("timestamp", "id")
    )
    groups: dict[tuple[int, str, str], list[Interaction]] = defaultdict(list)
    for interaction in failures.iterator(chunk_size=1000):
        key = (interaction.service_id, _failure_tool(interaction), interaction.failure_kind or "unknown")
        groups[key].append(interaction)
    for (_service_id, tool, kind), items in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        service = items[0].service
        fingerprint = f"{service.name}:{tool or '-'}:{kind}"
        since = last.get(fingerprint)
        if since is not None:
            items = [i for i in items if i.created_at > since]
        if len(items) < tc.error_pattern_min_failures:
            continue
        # Similar failures are the same wording with other ids: compare the wording alone.
        emb = embedder.embed([mask_entities(i.user_query) for i in items])
        a, b, _ = similar_pairs(emb, threshold=tc.error_pattern_similarity)
        labels = components(len(items), a, b)
        sizes = np.bincount(labels, minlength=len(items))
        biggest = int(sizes.argmax())
        if sizes[biggest] < tc.error_pattern_min_failures:
            continue
        members = [items[k] for k in np.flatnonzero(labels == biggest)]
        cluster_id = hashlib.sha256(members[0].user_query.encode()).hexdigest()[:12]
        report.fired.append(_fire(
            TriggerKind.ERROR_PATTERN, service=service, fingerprint=fingerprint,
            reason=f"{len(members)} similar '{kind}' failures on {service.name}.{tool or '(no call)'} "
                   f"(threshold {tc.error_pattern_min_failures}, cosine >= {tc.error_pattern_similarity})",
            details={"tool": tool, "failure_kind": kind, "size": len(members), "cluster": cluster_id,
                     "interaction_ids": [m.pk for m in members[:50]],
                     "sample_queries": [m.user_query for m in members[:5]]},
            by=by,
        ))


def _accuracy_history() -> dict[str, list[tuple[datetime, float]]]:
    """Finished evaluation runs per suite as (time, exact-match %), oldest first."""
    out: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    runs = (EvalRun.objects.filter(status=EvalRun.Status.SUCCEEDED, exact__isnull=False, finished_at__isnull=False)
            .select_related("suite").order_by("finished_at"))
    for run in runs:
        out[str(run.suite)].append((run.finished_at, float(run.exact)))  # type: ignore[arg-type]
    return dict(out)


def _check_stale_accuracy(cfg: CurationConfig, report: TriggerReport, now: datetime, by: Actor) -> None:
    days = cfg.triggers.stale_accuracy_days
    history = _accuracy_history()
    cutoff = now - timedelta(days=days)
    compared: dict[str, dict[str, Any]] = {}
    for suite, runs in sorted(history.items()):
        before = [acc for when, acc in runs if when < cutoff]
        recent = [acc for when, acc in runs if when >= cutoff]
        if before:
            compared[suite] = {"best_before": max(before), "best_recent": max(recent, default=None),
                               "runs_recent": len(recent)}
    if not compared:
        report.skipped[TriggerKind.STALE_ACCURACY] = f"no evaluation run older than {days} days to compare with"
        return
    if TriggerEvent.objects.filter(kind=TriggerKind.STALE_ACCURACY, created_at__gte=cutoff).exists():
        report.skipped[TriggerKind.STALE_ACCURACY] = f"already fired in the last {days} days"
        return
    gained = [s for s, c in compared.items() if c["best_recent"] is not None and c["best_recent"] > c["best_before"]]
    if gained:
        report.skipped[TriggerKind.STALE_ACCURACY] = f"accuracy improved in the last {days} days on {gained}"
        return
    parts = []
    for suite, c in compared.items():
        since = "no run" if c["best_recent"] is None else f"{c['best_recent']:.1f}%"
        parts.append(f"{suite}: best {c['best_before']:.1f}% before, {since} since")
    summary = "; ".join(parts)
    report.fired.append(_fire(
        TriggerKind.STALE_ACCURACY, service=None, fingerprint="global",
        reason=f"no accuracy gain in {days} days ({summary})",
        details={"days": days, "suites": compared},
        by=by,
    ))


@transaction.atomic
def triggers_evaluate(
    *, actor: Actor | None = None, now: datetime | None = None, config: CurationConfig | None = None,
    embedder: Embedder | None = None,
) -> TriggerReport:
    """Run the three checks; each firing is a ``TriggerEvent`` row plus an audit row by ``actor``
    (the schedule, ``system:loop``, unless a person asked)."""
    from ftops.datasets.embedding_store import db_embedder

    by = actor or Actor.system("system:loop")
    cfg = config or load_config().curation
    now = now or timezone.now()
    report = TriggerReport()
    _check_high_quality(cfg, report, by)
    _check_error_patterns(cfg, report, now, embedder or db_embedder(), by)
    _check_stale_accuracy(cfg, report, now, by)
    return report


@dataclass(frozen=True)
class CurationFollowUp:
    """What the loop did after a curation run asked for triggers (kept on that run's result)."""

    curation_run_id: int
    report: dict[str, Any]


def triggers_evaluate_for_curation_run(*, curation_run_id: int, actor: Actor | None = None) -> CurationFollowUp:
    """A curation run of kind ``triggers``/``scheduled`` hands over by task name once its own
    work committed (datasets cannot import the loop); the report lands on that run's result."""
    from ftops.datasets.services.runs import curation_run_note

    report = triggers_evaluate(actor=actor).as_dict()
    curation_run_note(run_id=curation_run_id, key="triggers", value=report)
    return CurationFollowUp(curation_run_id=curation_run_id, report=report)
