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
    canary_start,
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
    # Production waits for the end of the canary's period; the stages below it do not.
    assert judge(canary=arm(250), production=arm(2000), share=0.5, policy=POLICY)[0] == CanaryAction.HOLD
    assert judge(canary=arm(250), production=arm(2000), share=0.5, policy=POLICY,
                 period_over=True)[0] == CanaryAction.PROMOTE
    assert judge(canary=arm(250), production=arm(2000), share=0.1, policy=POLICY,
                 period_over=True)[0] == CanaryAction.STAGE
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


def test_judge_when_the_period_is_over() -> None:
    over = {"policy": POLICY, "period_over": True}
    # Too few requests, or a test still inconclusive: keep running rather than decide on too little.
    assert judge(canary=arm(40), production=arm(2000), share=0.1, **over)[0] == CanaryAction.HOLD
    assert judge(canary=arm(250, 8), production=arm(2000, 40), share=0.5, **over)[0] == CanaryAction.HOLD
    # Surely worse than production by more than the margin (4.5% vs 1%, under the 5% limit): rolled back.
    action, reason, test = judge(canary=arm(2000, 90), production=arm(2000, 20), share=0.5, **over)
    assert action == CanaryAction.ROLLBACK and test["difference_lower"] > POLICY.margin
    assert "worse than production" in reason
    # The same numbers before the period's end only hold.
    assert judge(canary=arm(2000, 90), production=arm(2000, 20), share=0.5, policy=POLICY)[0] == CanaryAction.HOLD
    no_auto = CanaryPolicy(**{**POLICY.__dict__, "auto_promote": False})
    assert judge(canary=arm(250), production=arm(2000), share=0.5, policy=no_auto,
                 period_over=True)[0] == CanaryAction.HOLD


def test_auto_promote_and_duration_come_from_the_config_and_the_settings_override(
        settings: Any, tmp_path: Any) -> None:
    config = tmp_path / "ft_ops_config.yaml"
    config.write_text("deployment:\n  canary_traffic: 0.2\n  canary_duration_hours: 6\n  auto_promote: true\n")
    settings.FTOPS_CONFIG_FILE = str(config)
    settings.FTOPS_CANARY_AUTO_PROMOTE = None
    settings.FTOPS_CANARY_DURATION_HOURS = None
    policy = CanaryPolicy.current()
    assert (policy.auto_promote, policy.duration_hours, policy.initial_share) == (True, 6.0, 0.2)
    config.write_text("deployment:\n  auto_promote: false\n")
    assert (CanaryPolicy.current().auto_promote, CanaryPolicy.current().duration_hours) == (False, 24.0)
    settings.FTOPS_CANARY_AUTO_PROMOTE = True
    settings.FTOPS_CANARY_DURATION_HOURS = 0.5
    assert (CanaryPolicy.current().auto_promote, CanaryPolicy.current().duration_hours) == (True, 0.5)


def test_promotion_waits_for_the_period_and_a_canary_without_evidence_keeps_running(
        canary_pair: tuple[Deployment, Deployment], settings: Any) -> None:
    settings.FTOPS_CANARY_AUTO_PROMOTE = True
    settings.FTOPS_CANARY_DURATION_HOURS = None
    settings.FTOPS_CANARY_STAGES = [1.0]  # one stage: the next step is production
    prod, canary = canary_pair  # started 10:00; the config's period is 24 h
    traffic(prod.model_version, arm="production", n=1800, at=NOW - timedelta(minutes=20))
    traffic(canary.model_version, arm="canary", n=40, at=NOW - timedelta(minutes=20))
    tomorrow = datetime(2026, 1, 2, 10, 0, tzinfo=UTC)
    assert canary_check(deployment_id=canary.pk, now=NOW).action == CanaryAction.HOLD
    assert CanaryDecision.objects.count() == 0
    # The period ends with 40 canary requests of the 200 needed: it keeps running, recorded once.
    first = canary_check(deployment_id=canary.pk, now=tomorrow)
    assert first.action == CanaryAction.EXTEND and first.decision_id is not None
    assert "24 h canary period is over" in first.reason and "too few requests: canary 40" in first.reason
    assert first.numbers["test"]["period"]["over"] is True
    row = CanaryTraffic.objects.get(deployment=canary)
    assert row.note == first.reason and row.overdue_since == tomorrow
    assert canary_check(deployment_id=canary.pk, now=tomorrow + timedelta(minutes=1)).action == CanaryAction.HOLD
    decision = CanaryDecision.objects.get()
    assert (decision.action, decision.share_before, decision.share_after) == ("extend", 0.1, 0.1)
    assert decision.numbers["canary"]["requests"] == 40
    assert AuditEvent.objects.filter(action=AuditAction.CANARY_DECIDED, detail__action="extend").count() == 1
    canary.refresh_from_db()
    assert canary.state == DeploymentState.CANARY
    # Enough requests arrive: promoted, and the note is history.
    traffic(canary.model_version, arm="canary", n=200, at=tomorrow)
    promoted = canary_check(deployment_id=canary.pk, now=tomorrow + timedelta(minutes=2))
    assert promoted.action == CanaryAction.PROMOTE
    canary.refresh_from_db()
    assert canary.state == DeploymentState.PRODUCTION


def test_a_canary_started_with_its_own_duration(db: Any, settings: Any) -> None:
    settings.FTOPS_CANARY_AUTO_PROMOTE = True
    settings.FTOPS_CANARY_DURATION_HOURS = None
    prod = deploy(make_version("acme-gpt-v1.0.0"))
    version = make_version("acme-gpt-v1.1.0", status="approved")
    with pytest.raises(ValidationFailed):
        canary_start(model_version_id=version.pk, by=Actor.system("alice"), duration_hours=-1)
    canary = canary_start(model_version_id=version.pk, by=Actor.system("alice"), duration_hours=2)
    row = CanaryTraffic.objects.get(deployment=canary)
    assert (row.duration_hours, row.share, row.stage) == (2.0, 0.1, 0)
    assert canary.reason == "canary for 2 h"
    start = canary.created_at
    traffic(prod.model_version, arm="production", n=1800, at=start + timedelta(minutes=1))
    traffic(version, arm="canary", n=300, at=start + timedelta(minutes=1))
    # Not worse at 10%: 50% at once; production only after its own two hours, not the config's 24.
    assert canary_check(deployment_id=canary.pk, now=start + timedelta(minutes=5)).action == CanaryAction.STAGE
    later = start + timedelta(minutes=10)
    traffic(prod.model_version, arm="production", n=1800, at=later)
    traffic(version, arm="canary", n=300, at=later)
    assert canary_check(deployment_id=canary.pk, now=later + timedelta(minutes=1)).action == CanaryAction.HOLD
    assert canary_check(deployment_id=canary.pk,
                        now=start + timedelta(hours=2, minutes=1)).action == CanaryAction.PROMOTE


def test_staged_promotion_with_enough_samples(canary_pair: tuple[Deployment, Deployment], settings: Any) -> None:
    settings.FTOPS_CANARY_AUTO_PROMOTE = True
    settings.FTOPS_CANARY_DURATION_HOURS = 0.6  # started 10:00: production from 10:36
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
