"""Reads for the gateway's pages: a service's deployments with per-arm series, canaries in flight."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Q
from django.utils import timezone

from ftops.gateway.canary import CanaryPolicy, canary_numbers, production_for
from ftops.gateway.models import Arm, ArmOutcome, CanaryDecision, CanaryTraffic, ShadowComparison, ShadowDeployment
from ftops.gateway.selectors import ArmSummary
from registry.models import ENTERPRISE_SCOPE, Deployment, DeploymentState, ModelVersion, VersionStatus

CHART_MINUTES = 60


@dataclass
class CanaryView:
    deployment: Deployment
    share: float
    paused: bool
    stage_started_at: datetime
    numbers: dict[str, Any]
    decisions: list[CanaryDecision] = field(default_factory=list)
    period_hours: float = 0.0
    period_ends_at: datetime | None = None
    note: str = ""


@dataclass
class ShadowView:
    """A shadow deployment with how often its calls agreed with production's."""

    shadow: ShadowDeployment
    compared: int
    tools_agree: int
    arguments_agree: int
    errors: int

    @property
    def answered(self) -> int:
        return self.compared - self.errors

    @property
    def tools_rate(self) -> float | None:
        return self.tools_agree / self.answered if self.answered else None

    @property
    def arguments_rate(self) -> float | None:
        return self.arguments_agree / self.answered if self.answered else None


SHADOWS_SHOWN = 10


def service_shadows(*, service: str) -> dict[str, Any]:
    """The shadows of ``service`` (its own and the enterprise ones; running first, then the last
    ended ones) with their agreement counts, and the approved versions that could shadow it."""
    scopes = [service] if service == ENTERPRISE_SCOPE else [service, ENTERPRISE_SCOPE]
    rows = list(ShadowDeployment.objects.filter(scope__in=scopes).select_related("model_version")
                .annotate(compared=Count("comparisons"),
                          tools=Count("comparisons", filter=Q(comparisons__tools_agree=True)),
                          arguments=Count("comparisons", filter=Q(comparisons__arguments_agree=True)),
                          failed=Count("comparisons", filter=~Q(comparisons__error="")))
                .order_by("-active", "-created_at")[:SHADOWS_SHOWN])
    views = [ShadowView(shadow=r, compared=r.compared, tools_agree=r.tools,  # type: ignore[attr-defined]
                        arguments_agree=r.arguments, errors=r.failed)  # type: ignore[attr-defined]
             for r in rows]
    shadowing = {v.shadow.model_version_id for v in views if v.shadow.active and v.shadow.scope == service}
    live = set(Deployment.objects.filter(scope=service, state__in=[DeploymentState.PRODUCTION,
                                                                   DeploymentState.CANARY])
               .values_list("model_version_id", flat=True))
    candidates = list(ModelVersion.objects.filter(status=VersionStatus.APPROVED, scope__in=scopes)
                      .exclude(pk__in=shadowing | live).order_by("-created_at")[:20])
    return {"shadows": views, "shadow_candidates": candidates}


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
        hours = traffic.duration_hours if traffic and traffic.duration_hours is not None else policy.duration_hours
        view = CanaryView(deployment=canary, share=(traffic.share if traffic else policy.initial_share),
                          paused=bool(traffic and traffic.paused), stage_started_at=started,
                          numbers={k: (v.as_dict() if v else None) for k, v in numbers.items()},
                          decisions=list(CanaryDecision.objects.filter(deployment=canary)[:20]),
                          period_hours=float(hours), period_ends_at=canary.created_at + timedelta(hours=float(hours)),
                          note=traffic.note if traffic else "")
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
        "service": service, "production": production, "canary": view, "now": now,
        "split": {"production": round(100 * (1 - canary_share)) if production else 0,
                  "canary": round(100 * canary_share) if view else 0},
        "charts": _series(versions, scope_of=scopes, since=since),
        "history": list(CanaryDecision.objects.filter(scope__in=[service, ENTERPRISE_SCOPE])
                        .select_related("model_version")[:20]),
        **service_shadows(service=service),
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
