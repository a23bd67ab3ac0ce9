"""Reads for the gateway: where a model name goes, and what each arm's traffic looked like.

Routing reads run in a worker thread of the gateway (the ORM is synchronous) and their
results are cached by ``routing.RouteCache``; nothing here is on the hot path per request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Q

from ftops.catalog.models import Service
from ftops.datasets.config import ConfigError, DeploymentConfig, load_config
from ftops.gateway.models import LATENCY_BUCKETS_MS, Arm, ArmOutcome, CanaryTraffic
from registry.models import ENTERPRISE_SCOPE, Deployment, DeploymentState, ModelVersion, VersionStatus

logger = logging.getLogger(__name__)

# A version named directly may serve while it is being judged or after it was approved;
# a rejected, rolled-back or never-approved version may not.
SERVABLE_BY_NAME = (VersionStatus.APPROVED, VersionStatus.CANARY, VersionStatus.PRODUCTION)


@dataclass(frozen=True)
class Target:
    """One version as the gateway calls it."""

    model_version_id: int
    name: str
    serving: dict[str, Any]
    scope: str
    arm: str


@dataclass(frozen=True)
class ServiceRoutes:
    """What serves one service: production, and the canary that takes ``canary_share`` of it."""

    service: str
    production: Target | None
    canary: Target | None = None
    canary_deployment_id: int | None = None
    canary_share: float = 0.0


def service_names() -> set[str]:
    return set(Service.objects.values_list("name", flat=True))


def _deployment(service: str, state: str) -> Deployment | None:
    """The service's own deployment in ``state``, else the enterprise one."""
    rows = (Deployment.objects.filter(Q(scope=service) | Q(scope=ENTERPRISE_SCOPE), state=state)
            .select_related("model_version"))
    found = {d.scope: d for d in rows}
    return found.get(service) or found.get(ENTERPRISE_SCOPE)


def _canary_share(deployment: Deployment) -> float:
    # A deployment that carries its own share (a staged promotion) wins over the configured default.
    # The canary checker's stage (gateway.canary) lives in CanaryTraffic; paused means no traffic.
    staged = CanaryTraffic.objects.filter(deployment=deployment).values_list("share", "paused").first()
    if staged is not None:
        return 0.0 if staged[1] else max(0.0, min(1.0, float(staged[0])))
    try:
        return float(load_config().deployment.canary_traffic)
    except ConfigError as exc:
        # A broken config file must not stop traffic: the documented default share serves.
        logger.warning("gateway: %s; canary traffic share defaults to %s", exc, DeploymentConfig().canary_traffic)
        return float(DeploymentConfig().canary_traffic)


def service_routes(*, service: str) -> ServiceRoutes:
    production = _deployment(service, DeploymentState.PRODUCTION)
    canary = _deployment(service, DeploymentState.CANARY)
    prod_target = (Target(model_version_id=production.model_version_id, name=production.model_version.name,
                          serving=dict(production.model_version.serving or {}), scope=production.scope,
                          arm=Arm.PRODUCTION) if production else None)
    if canary is None:
        return ServiceRoutes(service=service, production=prod_target)
    return ServiceRoutes(
        service=service, production=prod_target,
        canary=Target(model_version_id=canary.model_version_id, name=canary.model_version.name,
                      serving=dict(canary.model_version.serving or {}), scope=canary.scope, arm=Arm.CANARY),
        canary_deployment_id=canary.pk, canary_share=_canary_share(canary),
    )


def version_target(*, name: str) -> Target | None:
    """A version named directly (``acme-tiny-v1.2.0``), if it may serve."""
    version = ModelVersion.objects.filter(name=name, status__in=SERVABLE_BY_NAME).first()
    if version is None:
        return None
    return Target(model_version_id=version.pk, name=version.name, serving=dict(version.serving or {}),
                  scope=version.scope, arm=Arm.DIRECT)


def gateway_models() -> list[dict[str, Any]]:
    """``GET /v1/models``: every service something serves (``ftops/<service>``) and each live version."""
    live = list(Deployment.objects.filter(state__in=[DeploymentState.PRODUCTION, DeploymentState.CANARY])
                .select_related("model_version").order_by("scope", "state"))
    scopes = {d.scope for d in live if d.state == DeploymentState.PRODUCTION}
    services = sorted(service_names()) if ENTERPRISE_SCOPE in scopes else sorted(scopes)
    rows = [{"id": f"ftops/{name}", "created": 0, "owned_by": "ftops"} for name in services]
    seen: set[str] = set()
    for deployment in live:
        version = deployment.model_version
        if version.name not in seen:
            seen.add(version.name)
            rows.append({"id": version.name, "created": int(version.created_at.timestamp()), "owned_by": "ftops"})
    return rows


# --- per-arm outcomes (the canary checker's input) ------------------------------------------------


@dataclass
class ArmSummary:
    model_version_id: int
    arm: str
    calls: int = 0
    upstream_errors: int = 0
    timeouts: int = 0
    fallbacks: int = 0
    schema_invalid: int = 0
    latency_sum_ms: float = 0.0
    latency_buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_MS) + 1))

    @property
    def requests(self) -> int:
        """Every request routed to this arm: answered, or failed upstream."""
        return self.calls + self.upstream_errors

    @property
    def error_rate(self) -> float | None:
        """Upstream failures and schema-invalid answers per request routed to the arm."""
        if not self.requests:
            return None
        return (self.upstream_errors + self.schema_invalid) / self.requests

    def latency_quantile_ms(self, q: float) -> float | None:
        """The upper bound of the bucket holding the q-quantile (conservative: never under-reports)."""
        total = sum(self.latency_buckets)
        if not total:
            return None
        rank = q * total
        running = 0
        for index, count in enumerate(self.latency_buckets):
            running += count
            if running >= rank and count:
                return float(LATENCY_BUCKETS_MS[index]) if index < len(LATENCY_BUCKETS_MS) else float("inf")
        return float("inf")

    @property
    def p50_ms(self) -> float | None:
        return self.latency_quantile_ms(0.5)

    @property
    def p95_ms(self) -> float | None:
        return self.latency_quantile_ms(0.95)


def arm_outcomes(*, model_version_id: int, since: datetime, arm: str | None = None,
                 scope: str | None = None) -> ArmSummary:
    """One version's outcomes since ``since`` (minute resolution), optionally for one arm and scope."""
    rows = ArmOutcome.objects.filter(model_version_id=model_version_id, minute__gte=since)
    if arm:
        rows = rows.filter(arm=arm)
    if scope:
        rows = rows.filter(scope=scope)
    summary = ArmSummary(model_version_id=model_version_id, arm=arm or "")
    for row in rows:
        summary.calls += row.calls
        summary.upstream_errors += row.upstream_errors
        summary.timeouts += row.timeouts
        summary.fallbacks += row.fallbacks
        summary.schema_invalid += row.schema_invalid
        summary.latency_sum_ms += row.latency_sum_ms
        for index, count in enumerate(row.latency_buckets or []):
            if index < len(summary.latency_buckets):
                summary.latency_buckets[index] += int(count)
    return summary
