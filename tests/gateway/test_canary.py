"""The canary checker: its statistics, its rules, and what it records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ftops.common.actors import Actor
from ftops.common.errors import Conflict, ValidationFailed
from ftops.common.models import AuditAction, AuditEvent
from ftops.gateway.canary import (
    ArmNumbers,
    CanaryPolicy,
    canaries_check_all,
    canary_act,
    canary_check,
    judge,
    newcombe_difference,
    not_worse,
    wilson_interval,
    z_one_sided,
)
from ftops.gateway.models import CanaryAction, CanaryDecision, CanaryTraffic
from ftops.gateway.selectors import service_routes
from ftops.gateway.services import arm_outcomes_record
from registry.models import Deployment, DeploymentState, ModelVersion
from tests.gateway.conftest import deploy, make_version

# --- statistics ---------------------------------------------------------------------------------------


def test_z_one_sided_at_five_percent() -> None:
    assert round(z_one_sided(0.05), 3) == 1.645
    with pytest.raises(ValueError):
        z_one_sided(0)


def test_wilson_interval_known_values() -> None:
    # 0 of 100 at z=1.96: the upper bound is z^2 / (n + z^2) = 0.0370
    low, high = wilson_interval(0, 100, 1.96)
    assert (round(low, 4), round(high, 4)) == (0.0, 0.037)
    low, high = wilson_interval(10, 100, 1.96)
    assert (round(low, 4), round(high, 4)) == (0.0552, 0.1744)
    assert wilson_interval(0, 0, 1.96) == (0.0, 1.0)


def test_newcombe_difference_brackets_the_observed_difference() -> None:
    low, high = newcombe_difference(10, 100, 5, 100, 1.96)
    assert low < 0.05 < high
    # Newcombe (1998), example: 56/70 vs 48/80 at 95% -> (0.0524, 0.3339)
    low, high = newcombe_difference(56, 70, 48, 80, 1.96)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)


def test_not_worse_needs_samples_not_a_handful_of_clean_calls() -> None:
    # Ten clean calls prove nothing; two hundred clean calls on each arm do (margin 2 points).
    assert not_worse(canary_errors=0, canary_n=10, production_errors=0, production_n=10, margin=0.02,
                     alpha=0.05)[0] is False
    assert not_worse(canary_errors=0, canary_n=200, production_errors=0, production_n=200, margin=0.02,
                     alpha=0.05)[0] is True
    # A canary clearly worse than production is never "not worse", however many samples.
    assert not_worse(canary_errors=40, canary_n=1000, production_errors=10, production_n=1000, margin=0.02,
                     alpha=0.05)[0] is False


POLICY = CanaryPolicy(stages=(0.1, 0.5, 1.0), min_samples=200, rollback_min_samples=20, alpha=0.05, margin=0.02,
                      max_error_rate=0.05, max_p95_ms=2000, auto_promote=True, initial_share=0.1)


def arm(requests: int, errors: int = 0, p95: float | None = 100.0) -> ArmNumbers:
    return ArmNumbers(version="v", requests=requests, calls=requests - errors, upstream_errors=errors,
                      schema_invalid=0, negative_feedback=0, fallbacks=0, p50_ms=50.0, p95_ms=p95)


def test_judge_rules() -> None:
    assert judge(canary=arm(10, 10), production=arm(500), share=0.1, policy=POLICY)[0] == CanaryAction.HOLD
    assert judge(canary=arm(20, 20), production=arm(500), share=0.1, policy=POLICY)[0] == CanaryAction.ROLLBACK
    assert judge(canary=arm(30, 0, p95=3000), production=arm(500), share=0.1,
                 policy=POLICY)[0] == CanaryAction.ROLLBACK
    # 2 errors in 30 (6.7%) could be luck at a 5% limit: hold and gather more.
    assert judge(canary=arm(30, 2), production=arm(500), share=0.1, policy=POLICY)[0] == CanaryAction.HOLD
    assert judge(canary=arm(250), production=arm(2000), share=0.1, policy=POLICY)[0] == CanaryAction.STAGE
    assert judge(canary=arm(250), production=arm(2000), share=0.5, policy=POLICY)[0] == CanaryAction.PROMOTE
    assert judge(canary=arm(250), production=arm(150), share=0.1, policy=POLICY)[0] == CanaryAction.HOLD
    no_auto = CanaryPolicy(**{**POLICY.__dict__, "auto_promote": False})
    assert judge(canary=arm(250), production=arm(2000), share=0.1, policy=no_auto)[0] == CanaryAction.HOLD


# --- the checker against the database ---------------------------------------------------------------


def traffic(version: ModelVersion, *, arm: str, n: int, errors: int = 0, at: datetime,
            scope: str = "enterprise", latency_ms: float = 80.0) -> None:
    records: list[dict[str, Any]] = []
    for i in range(n):
        kind = "error" if i < errors else "call"
        records.append({"kind": kind, "id": f"{version.pk}-{arm}-{at.timestamp()}-{i}",
                        "model_version_id": version.pk, "scope": scope, "arm": arm,
                        "finished_at": at.timestamp(), "latency_ms": latency_ms, "error": "upstream_error"})
    arm_outcomes_record(records=records)


@pytest.fixture
def canary_pair(db: Any) -> tuple[Deployment, Deployment]:
    prod = deploy(make_version("acme-gpt-v1.0.0"))
    canary = deploy(make_version("acme-gpt-v1.1.0", status="canary"), state=DeploymentState.CANARY)
    Deployment.objects.filter(pk=canary.pk).update(created_at=datetime(2026, 1, 1, 10, 0, tzinfo=UTC))
    canary.refresh_from_db()
    return prod, canary


NOW = datetime(2026, 1, 1, 10, 30, tzinfo=UTC)


def test_too_few_samples_decide_nothing(canary_pair: tuple[Deployment, Deployment]) -> None:
    prod, canary = canary_pair
    traffic(prod.model_version, arm="production", n=50, at=NOW - timedelta(minutes=5))
    traffic(canary.model_version, arm="canary", n=5, at=NOW - timedelta(minutes=5))
    result = canary_check(deployment_id=canary.pk, now=NOW)
    assert result.action == CanaryAction.HOLD
    assert result.numbers["canary"]["requests"] == 5
    assert CanaryDecision.objects.count() == 0
    assert not AuditEvent.objects.filter(action=AuditAction.CANARY_DECIDED).exists()
    canary.refresh_from_db()
    assert canary.state == DeploymentState.CANARY


def test_bad_canary_is_rolled_back_with_its_numbers(canary_pair: tuple[Deployment, Deployment],
                                                    settings: Any) -> None:
    prod, canary = canary_pair
    traffic(prod.model_version, arm="production", n=200, at=NOW - timedelta(minutes=3))
    traffic(canary.model_version, arm="canary", n=25, errors=20, at=NOW - timedelta(minutes=3))
    [result] = canaries_check_all(now=NOW)
    assert result.action == CanaryAction.ROLLBACK
    canary.refresh_from_db()
    assert canary.state == DeploymentState.ROLLED_BACK
    assert ModelVersion.objects.get(pk=canary.model_version_id).status == "rolled_back"
    decision = CanaryDecision.objects.get()
    assert (decision.action, decision.automatic, decision.decided_by) == ("rollback", True, "canary-checker")
    assert decision.numbers["canary"]["errors"] == 20
    assert decision.numbers["canary"]["requests"] == 25
    assert decision.numbers["production"]["requests"] == 200
    audit = AuditEvent.objects.get(action=AuditAction.CANARY_DECIDED)
    assert audit.detail["decision_id"] == decision.pk
    assert service_routes(service="payments").canary is None


def test_staged_promotion_with_enough_samples(canary_pair: tuple[Deployment, Deployment]) -> None:
    prod, canary = canary_pair
    traffic(prod.model_version, arm="production", n=1800, at=NOW - timedelta(minutes=20))
    traffic(canary.model_version, arm="canary", n=220, at=NOW - timedelta(minutes=20))
    first = canary_check(deployment_id=canary.pk, now=NOW)
    assert first.action == CanaryAction.STAGE
    share = CanaryTraffic.objects.get(deployment=canary)
    assert (share.share, share.stage, share.stage_started_at) == (0.5, 1, NOW)
    assert service_routes(service="payments").canary_share == 0.5
    # The next stage is judged only on what came after it started: the same old counts decide nothing.
    assert canary_check(deployment_id=canary.pk, now=NOW + timedelta(minutes=1)).action == CanaryAction.HOLD
    later = NOW + timedelta(minutes=10)
    traffic(prod.model_version, arm="production", n=1000, at=later)
    traffic(canary.model_version, arm="canary", n=1000, errors=5, at=later)
    second = canary_check(deployment_id=canary.pk, now=later + timedelta(minutes=1))
    assert second.action == CanaryAction.PROMOTE
    canary.refresh_from_db()
    assert canary.state == DeploymentState.PRODUCTION
    assert list(CanaryDecision.objects.order_by("id").values_list("action", "share_before", "share_after")) == [
        ("stage", 0.1, 0.5), ("promote", 0.5, 1.0)]
    assert service_routes(service="payments").production.name == "acme-gpt-v1.1.0"  # type: ignore[union-attr]


def test_pause_stops_traffic_and_decisions_then_resume(canary_pair: tuple[Deployment, Deployment]) -> None:
    _prod, canary = canary_pair
    person = Actor.system("alice")
    canary_act(deployment_id=canary.pk, action="pause", by=person, now=NOW)
    assert service_routes(service="payments").canary_share == 0.0
    traffic(canary.model_version, arm="canary", n=25, errors=25, at=NOW + timedelta(minutes=1))
    assert canary_check(deployment_id=canary.pk, now=NOW + timedelta(minutes=2)).action == "paused"
    with pytest.raises(Conflict):
        canary_act(deployment_id=canary.pk, action="pause", by=person)
    canary_act(deployment_id=canary.pk, action="resume", by=person, now=NOW + timedelta(minutes=3))
    assert service_routes(service="payments").canary_share == 0.1
    with pytest.raises(ValidationFailed):
        canary_act(deployment_id=canary.pk, action="rollback", by=person, reason=" ")
    with pytest.raises(ValidationFailed):
        canary_act(deployment_id=canary.pk, action="explode", by=person)
    canary_act(deployment_id=canary.pk, action="rollback", by=person, reason="customers complain")
    canary.refresh_from_db()
    assert canary.state == DeploymentState.ROLLED_BACK
    assert list(CanaryDecision.objects.order_by("id").values_list("action", "automatic")) == [
        ("pause", False), ("resume", False), ("rollback", False)]
