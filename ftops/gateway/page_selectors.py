"""Reads for the gateway's pages: a service's deployments with per-arm series, canaries in flight."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone

from ftops.gateway.canary import CanaryPolicy, canary_numbers, production_for
from ftops.gateway.models import Arm, ArmOutcome, CanaryDecision, CanaryTraffic, ShadowComparison
from ftops.gateway.selectors import ArmSummary
from registry.models import ENTERPRISE_SCOPE, Deployment, DeploymentState

CHART_MINUTES = 60


@dataclass
class CanaryView:
    deployment: Deployment
    share: float
    paused: bool
    stage_started_at: datetime
    numbers: dict[str, Any]
    decisions: list[CanaryDecision] = field(default_factory=list)


def _series(version_ids: dict[str, int], *, scope_of: dict[str, str], since: datetime) -> dict[str, Any]:
    """Per-minute error rate (%), p95 (ms) and shadow agreement (%) per arm, for the charts."""
    minutes = [since + timedelta(minutes=i) for i in range(CHART_MINUTES + 1)]
    labels = [m.strftime("%H:%M") for m in minutes]
    out: dict[str, Any] = {"labels": labels}
    for arm, version_id in version_ids.items():
        per_minute: dict[datetime, ArmSummary] = {}
        for row in ArmOutcome.objects.filter(model_version_id=version_id, arm=arm, scope=scope_of[arm],
                                             minute__gte=since):
            s = per_minute.setdefault(row.minute, ArmSummary(model_version_id=version_id, arm=arm))
            s.calls += row.calls
            s.upstream_errors += row.upstream_errors
            s.schema_invalid += row.schema_invalid
            for i, count in enumerate(row.latency_buckets or []):
                if i < len(s.latency_buckets):
                    s.latency_buckets[i] += int(count)
        errors, p95 = [], []
        for m in minutes:
            found = per_minute.get(m)
            rate = found.error_rate if found else None
            errors.append(round(100 * rate, 2) if rate is not None else None)
            q = found.p95_ms if found else None
            p95.append(q if q is not None and q != float("inf") else None)
        agreement: list[float | None] = []
        counts: dict[datetime, list[int]] = defaultdict(lambda: [0, 0])
        for created, agrees in ShadowComparison.objects.filter(model_version_id=version_id,
                                                               created_at__gte=since).values_list(
                "created_at", "arguments_agree"):
            bucket = counts[created.replace(second=0, microsecond=0)]
            bucket[0] += 1
            bucket[1] += 1 if agrees else 0
        for m in minutes:
            n, ok = counts.get(m, [0, 0])
            agreement.append(round(100 * ok / n, 1) if n else None)
        out[arm] = {"error_rate": errors, "p95": p95, "agreement": agreement}
    return out


def service_deployments(*, service: str, now: datetime | None = None) -> dict[str, Any]:
    """What serves ``service`` now: production, the canary with its share and numbers, the split, charts."""
    now = now or timezone.now()
    production = production_for(service)
    canaries = {d.scope: d for d in Deployment.objects.filter(
        Q(scope=service) | Q(scope=ENTERPRISE_SCOPE), state=DeploymentState.CANARY).select_related("model_version")}
    canary = canaries.get(service) or canaries.get(ENTERPRISE_SCOPE)
    view: CanaryView | None = None
    if canary is not None:
        traffic = CanaryTraffic.objects.filter(deployment=canary).first()
        policy = CanaryPolicy.current()
        started = traffic.stage_started_at if traffic else canary.created_at
        numbers = canary_numbers(deployment=canary, since=started)
        view = CanaryView(deployment=canary, share=(traffic.share if traffic else policy.initial_share),
                          paused=bool(traffic and traffic.paused), stage_started_at=started,
                          numbers={k: (v.as_dict() if v else None) for k, v in numbers.items()},
                          decisions=list(CanaryDecision.objects.filter(deployment=canary)[:20]))
    since = (now - timedelta(minutes=CHART_MINUTES)).replace(second=0, microsecond=0)
    versions: dict[str, int] = {}
    scopes: dict[str, str] = {}
    if production is not None:
        versions[Arm.PRODUCTION] = production.model_version_id
        scopes[Arm.PRODUCTION] = production.scope
    if canary is not None:
        versions[Arm.CANARY] = canary.model_version_id
        scopes[Arm.CANARY] = canary.scope
    canary_share = 0.0 if view is None or view.paused else view.share
    return {
        "service": service, "production": production, "canary": view,
        "split": {"production": round(100 * (1 - canary_share)) if production else 0,
                  "canary": round(100 * canary_share) if view else 0},
        "charts": _series(versions, scope_of=scopes, since=since),
        "history": list(CanaryDecision.objects.filter(scope__in=[service, ENTERPRISE_SCOPE])
                        .select_related("model_version")[:20]),
    }


def canaries_in_flight() -> list[dict[str, Any]]:
    """The home dashboard's card: every running canary with its share."""
    # One query: the share row rides along (reverse one-to-one), so the dashboard's count stays fixed.
    rows = list(Deployment.objects.filter(state=DeploymentState.CANARY)
                .select_related("model_version", "traffic_share").order_by("scope"))
    default = CanaryPolicy.current().initial_share
    out = []
    for d in rows:
        t: CanaryTraffic | None = getattr(d, "traffic_share", None)
        out.append({"deployment": d, "share": (t.share if t else default), "paused": bool(t and t.paused),
                    "since": d.created_at})
    return out
