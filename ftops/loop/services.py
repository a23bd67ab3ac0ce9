"""Retraining triggers, evaluated on a schedule; each firing leaves a ``TriggerEvent`` saying why.

- ``high_quality_examples``: at least ``curation.min_examples`` new high-quality examples for a
  service since its last such trigger.
- ``error_pattern``: at least ``triggers.error_pattern_min_failures`` similar failures: same
  service, tool and failure kind, and one cluster of the requests' embeddings (cosine >=
  ``error_pattern_similarity``), counted since the last trigger for that group.
- ``stale_accuracy``: no accuracy gain in ``stale_accuracy_days`` days, read from evaluation
  runs; skipped with a reason when the evaluation app has no runs to read.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from ftops.catalog.models import Service
from ftops.datasets.config import CurationConfig, load_config
from ftops.datasets.dedup import components, similar_pairs
from ftops.datasets.embeddings import Embedder
from ftops.datasets.filters import normalise_calls
from ftops.datasets.models import ExampleStatus, Quality, TrainingExample, TriggerEvent, TriggerKind
from ftops.datasets.splitting import mask_entities
from ftops.interactions.models import Interaction


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
    kind: str, *, service: Service | None, fingerprint: str, reason: str, details: dict[str, Any]
) -> TriggerEvent:
    return TriggerEvent.objects.create(kind=kind, service=service, fingerprint=fingerprint, reason=reason,
                                       details=details)


def _last_fired(kind: str) -> dict[str, datetime]:
    rows = TriggerEvent.objects.filter(kind=kind).values("fingerprint").annotate(at=Max("created_at"))
    return {r["fingerprint"]: r["at"] for r in rows}


def _check_high_quality(cfg: CurationConfig, report: TriggerReport) -> None:
    last = _last_fired(TriggerKind.HIGH_QUALITY_EXAMPLES)
    for service in Service.objects.order_by("name"):
        fingerprint = f"service:{service.name}"
        qs = TrainingExample.objects.filter(service=service, quality=Quality.HIGH, status=ExampleStatus.ACTIVE)
        since = last.get(fingerprint)
        if since is not None:
            qs = qs.filter(created_at__gt=since)
        count = qs.count()
        if count >= cfg.min_examples:
            report.fired.append(_fire(
                TriggerKind.HIGH_QUALITY_EXAMPLES, service=service, fingerprint=fingerprint,
                reason=f"{count} new high-quality examples for {service.name} "
                       f"(threshold {cfg.min_examples}) since {since.isoformat() if since else 'the start'}",
                details={"count": count, "threshold": cfg.min_examples,
                         "since": since.isoformat() if since else None},
            ))


def _failure_tool(interaction: Interaction) -> str:
    calls = normalise_calls(interaction.tool_calls)
    return calls[0]["name"] if calls else ""


def _check_error_patterns(cfg: CurationConfig, report: TriggerReport, now: datetime, embedder: Embedder) -> None:
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
        ))


def _accuracy_history() -> tuple[dict[str, list[tuple[datetime, float]]] | None, str]:
    """Finished evaluation runs per suite as (time, exact-match %), or (None, why they cannot be read)."""
    try:
        from ftops.evaluation.models import EvalRun
    except ImportError:
        return None, "evaluation runs are not available (ftops.evaluation.models.EvalRun is not installed)"
    out: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    runs = (EvalRun.objects.filter(status=EvalRun.Status.SUCCEEDED, exact__isnull=False, finished_at__isnull=False)
            .select_related("suite").order_by("finished_at"))
    for run in runs:
        out[str(run.suite)].append((run.finished_at, float(run.exact)))  # type: ignore[arg-type]
    return dict(out), ""


def _check_stale_accuracy(cfg: CurationConfig, report: TriggerReport, now: datetime) -> None:
    days = cfg.triggers.stale_accuracy_days
    history, why = _accuracy_history()
    if history is None:
        report.skipped[TriggerKind.STALE_ACCURACY] = why
        return
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
    ))


@transaction.atomic
def triggers_evaluate(
    *, now: datetime | None = None, config: CurationConfig | None = None, embedder: Embedder | None = None
) -> TriggerReport:
    from ftops.datasets.embedding_store import db_embedder

    cfg = config or load_config().curation
    now = now or timezone.now()
    report = TriggerReport()
    _check_high_quality(cfg, report)
    _check_error_patterns(cfg, report, now, embedder or db_embedder())
    _check_stale_accuracy(cfg, report, now)
    return report
