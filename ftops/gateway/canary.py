"""Canary decisions: roll back at once when the canary is plainly bad, promote in stages when
the evidence says it is not worse than production.

The checker (``canary_check``, every minute from ``tasks.canaries_check``) reads the live
per-arm outcomes the gateway writes (``ArmOutcome``), the negative feedback on the canary's
interactions and the shadow comparisons of the canary's version, all counted from the start of
the canary's current stage, and takes at most one step:

* **rollback** when, with at least ``rollback_min_samples`` requests, the one-sided lower
  Wilson bound of the canary's error rate is above ``max_error_rate`` (the error rate is
  certainly too high, not just unlucky on a few calls), or its p95 latency exceeds
  ``max_p95_ms``;
* **stage up** (10 -> 50 -> 100 %; 100 % is the registry's ``canary_promote``) when both arms
  have ``min_samples`` requests and a non-inferiority test passes: the one-sided upper bound of
  (canary error rate - production error rate), by Newcombe's hybrid score interval, is below
  ``margin``. The score interval stays honest at 0 errors, where a Wald interval would claim
  certainty from a handful of calls; with no errors on either arm it needs about
  z^2 / margin = 135 requests per arm at alpha 0.05 and a 2-point margin;
  The last step, production, waits until the canary has run its period
  (``canary_duration_hours`` of ft_ops_config.yaml's deployment section, 24; or the duration
  given to ``canary_start``; ``FTOPS_CANARY_DURATION_HOURS`` overrides the file);
* when the period is over: a canary shown not worse takes its next step (production at the
  last stage); one surely worse than production by more than ``margin`` (the lower bound of the
  difference above it) is rolled back; one with too few requests, or a test still inconclusive,
  **keeps running** (``extend``, recorded once, with the reason kept on ``CanaryTraffic.note``):
  24 hours at a 10 % share of a quiet service may hold 40 requests, and neither promoting nor
  rolling back on those is better than waiting for the 200 a comparison needs;
* otherwise **hold**: nothing is written (a row a minute would bury the decisions that matter).

Automatic promotion follows ``deployment.auto_promote`` in ft_ops_config.yaml
(``FTOPS_CANARY_AUTO_PROMOTE``, when set, overrides it); rollbacks are always automatic.

Every step is a ``CanaryDecision`` with the numbers it was taken on, an audit row, and a
notification to the approvers. Manual steps from the deployments page (promote now, pause,
resume, roll back now) go through the same recording.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from statistics import NormalDist
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ftops.common.actors import Actor
from ftops.common.errors import Conflict, NotFound, ValidationFailed
from ftops.common.models import AuditAction
from ftops.common.services import audit_record
from ftops.gateway.models import Arm, CanaryAction, CanaryDecision, CanaryTraffic, ShadowComparison
from ftops.gateway.selectors import ArmSummary, arm_outcomes
from ftops.interactions.models import Interaction
from registry.models import ENTERPRISE_SCOPE, Deployment, DeploymentState

log = logging.getLogger(__name__)

CHECKER = "canary-checker"
MAX_DURATION_HOURS = 24 * 90


# --- statistics ------------------------------------------------------------------------------------


def z_one_sided(alpha: float) -> float:
    """The normal quantile a one-sided test at ``alpha`` compares against (1.645 at 0.05)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), not {alpha}")
    return NormalDist().inv_cdf(1 - alpha)


def wilson_interval(successes: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval for a proportion; (0, 1) when there is no data."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_difference(e1: int, n1: int, e2: int, n2: int, z: float) -> tuple[float, float]:
    """Interval for p1 - p2 from the two Wilson intervals (Newcombe 1998, method 10)."""
    p1 = e1 / n1 if n1 else 0.0
    p2 = e2 / n2 if n2 else 0.0
    l1, u1 = wilson_interval(e1, n1, z)
    l2, u2 = wilson_interval(e2, n2, z)
    diff = p1 - p2
    return diff - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), diff + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def not_worse(*, canary_errors: int, canary_n: int, production_errors: int, production_n: int,
              margin: float, alpha: float) -> tuple[bool, float]:
    """Non-inferiority: is the canary's error rate below production's + ``margin`` at level ``alpha``?

    Returns (verdict, the one-sided upper bound of the difference).
    """
    if canary_n <= 0 or production_n <= 0:
        return False, 1.0
    _, upper = newcombe_difference(canary_errors, canary_n, production_errors, production_n, z_one_sided(alpha))
    return upper < margin, upper


# --- policy and numbers ----------------------------------------------------------------------------


def _override(setting: Any, configured: Any) -> Any:
    return configured if setting is None else setting


@dataclass(frozen=True)
class CanaryPolicy:
    stages: tuple[float, ...]
    min_samples: int
    rollback_min_samples: int
    alpha: float
    margin: float
    max_error_rate: float
    max_p95_ms: float
    auto_promote: bool
    initial_share: float
    duration_hours: float = 24.0

    @classmethod
    def current(cls) -> CanaryPolicy:
        from ftops.datasets.config import ConfigError, FtopsConfig, load_config

        try:
            config = load_config()
        except ConfigError as exc:  # a broken file must not stop rollbacks: the defaults judge
            log.warning("canary checker: %s; judging with the default configuration", exc)
            config = FtopsConfig()
        return cls(
            stages=tuple(settings.FTOPS_CANARY_STAGES), min_samples=settings.FTOPS_CANARY_MIN_SAMPLES,
            rollback_min_samples=settings.FTOPS_CANARY_ROLLBACK_MIN_SAMPLES, alpha=settings.FTOPS_CANARY_ALPHA,
            margin=settings.FTOPS_CANARY_MARGIN,
            max_error_rate=float(config.evaluation.deployment_criteria.max_error_rate),
            max_p95_ms=float(settings.FTOPS_CANARY_MAX_P95_MS),
            # ft_ops_config.yaml decides; the settings, when set, override it.
            auto_promote=_override(getattr(settings, "FTOPS_CANARY_AUTO_PROMOTE", None),
                                   bool(config.deployment.auto_promote)),
            initial_share=float(config.deployment.canary_traffic),
            duration_hours=float(_override(getattr(settings, "FTOPS_CANARY_DURATION_HOURS", None),
                                           float(config.deployment.canary_duration_hours))),
        )

    def next_share(self, share: float) -> float:
        for stage in self.stages:
            if stage > share + 1e-9:
                return stage
        return 1.0


@dataclass
class ArmNumbers:
    version: str
    requests: int
    calls: int
    upstream_errors: int
    schema_invalid: int
    negative_feedback: int
    fallbacks: int
    p50_ms: float | None
    p95_ms: float | None
    shadowed: int = 0
    agreeing: int = 0

    @property
    def errors(self) -> int:
        # Feedback arrives later than the call; capping keeps the rate a proportion.
        return min(self.requests, self.upstream_errors + self.schema_invalid + self.negative_feedback)

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    @property
    def agreement(self) -> float | None:
        return self.agreeing / self.shadowed if self.shadowed else None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(errors=self.errors, error_rate=self.error_rate, agreement=self.agreement)
        for key in ("p50_ms", "p95_ms"):
            if out[key] is not None and math.isinf(out[key]):
                out[key] = None  # slower than the last bucket; JSON has no infinity
        return out


def _negative_feedback(version_name: str, arm: str, since: datetime) -> int:
    return Interaction.objects.filter(model_version=version_name, metadata__arm=arm, timestamp__gte=since,
                                      user_feedback__lte=settings.FTOPS_FAILURE_FEEDBACK_MAX).count()


def _arm(summary: ArmSummary, *, version: str, arm: str, since: datetime) -> ArmNumbers:
    return ArmNumbers(version=version, requests=summary.requests, calls=summary.calls,
                      upstream_errors=summary.upstream_errors, schema_invalid=summary.schema_invalid,
                      negative_feedback=_negative_feedback(version, arm, since), fallbacks=summary.fallbacks,
                      p50_ms=summary.p50_ms, p95_ms=summary.p95_ms)


def production_for(scope: str) -> Deployment | None:
    """What the canary is compared with: the scope's production, else the enterprise one."""
    rows = {d.scope: d for d in Deployment.objects.filter(scope__in=[scope, ENTERPRISE_SCOPE],
                                                          state=DeploymentState.PRODUCTION)
            .select_related("model_version")}
    return rows.get(scope) or rows.get(ENTERPRISE_SCOPE)


def canary_numbers(*, deployment: Deployment, since: datetime) -> dict[str, ArmNumbers | None]:
    """Both arms' numbers since ``since`` (minute resolution, as the outcomes are kept)."""
    since_minute = since.replace(second=0, microsecond=0)
    version = deployment.model_version
    canary = _arm(arm_outcomes(model_version_id=version.pk, since=since_minute, arm=Arm.CANARY,
                               scope=deployment.scope), version=version.name, arm=Arm.CANARY, since=since)
    shadows = ShadowComparison.objects.filter(model_version=version, created_at__gte=since)
    canary.shadowed = shadows.count()
    canary.agreeing = shadows.filter(arguments_agree=True).count()
    production = production_for(deployment.scope)
    prod_numbers = None
    if production is not None:
        prod_numbers = _arm(arm_outcomes(model_version_id=production.model_version_id, since=since_minute,
                                         arm=Arm.PRODUCTION, scope=production.scope),
                            version=production.model_version.name, arm=Arm.PRODUCTION, since=since)
    return {"canary": canary, "production": prod_numbers}


# --- the checker ------------------------------------------------------------------------------------


@dataclass
class CheckResult:
    deployment_id: int
    action: str
    reason: str
    share: float
    numbers: dict[str, Any]
    decision_id: int | None = None


def _traffic(deployment: Deployment, policy: CanaryPolicy, *, lock: bool = False) -> CanaryTraffic:
    """The canary's share row, created at the first stage the first time anyone looks."""
    rows = CanaryTraffic.objects.select_for_update() if lock else CanaryTraffic.objects
    traffic = rows.filter(deployment=deployment).first()
    if traffic is None:
        traffic, _ = CanaryTraffic.objects.get_or_create(
            deployment=deployment, defaults={"share": policy.initial_share, "stage": 0,
                                             "stage_started_at": deployment.created_at})
    return traffic


def judge(*, canary: ArmNumbers, production: ArmNumbers | None, share: float, policy: CanaryPolicy,
          period_over: bool = False) -> tuple[str, str, dict[str, Any]]:
    """(action, reason, test numbers) for one canary; pure, so the rules are tested on their own.

    ``period_over``: the canary has run its ``canary_duration_hours``. Stages below 100 % are
    taken whenever the test holds; the last step, production, waits for the period's end. Once
    it is over, a canary shown not worse is promoted (or staged, if stages remain); one surely
    worse than production by more than the margin is rolled back; one without enough requests,
    or whose test is still inconclusive, keeps running (HOLD, which the checker records once as
    EXTEND with its note): the period is a minimum, and promoting or rolling back on too little
    evidence is exactly what the test exists to prevent.
    """
    z = z_one_sided(policy.alpha)
    lower, upper = wilson_interval(canary.errors, canary.requests, z)
    test: dict[str, Any] = {"alpha": policy.alpha, "margin": policy.margin, "z": round(z, 4),
                            "min_samples": policy.min_samples, "rollback_min_samples": policy.rollback_min_samples,
                            "max_error_rate": policy.max_error_rate, "max_p95_ms": policy.max_p95_ms,
                            "canary_error_wilson": [round(lower, 5), round(upper, 5)]}
    if canary.requests >= policy.rollback_min_samples:
        if lower > policy.max_error_rate:
            return (CanaryAction.ROLLBACK,
                    f"error rate {canary.error_rate:.1%} over {canary.requests} requests; its lower bound "
                    f"{lower:.1%} exceeds the allowed {policy.max_error_rate:.1%}", test)
        if canary.p95_ms is not None and canary.p95_ms > policy.max_p95_ms:
            return (CanaryAction.ROLLBACK,
                    f"p95 latency {canary.p95_ms:.0f} ms over {canary.requests} requests exceeds "
                    f"{policy.max_p95_ms:.0f} ms", test)
    if production is None:
        return CanaryAction.HOLD, "no production arm to compare with", test
    if canary.requests < policy.min_samples or production.requests < policy.min_samples:
        return (CanaryAction.HOLD, f"too few requests: canary {canary.requests}, production "
                f"{production.requests}; {policy.min_samples} each are needed", test)
    verdict, diff_upper = not_worse(canary_errors=canary.errors, canary_n=canary.requests,
                                    production_errors=production.errors, production_n=production.requests,
                                    margin=policy.margin, alpha=policy.alpha)
    diff_lower, _ = newcombe_difference(canary.errors, canary.requests, production.errors, production.requests, z)
    test["difference_upper"] = round(diff_upper, 5)
    test["difference_lower"] = round(diff_lower, 5)
    test["not_worse"] = verdict
    if not verdict:
        if period_over and diff_lower > policy.margin:
            return (CanaryAction.ROLLBACK, f"its period is over and it is worse than production: the error rate "
                    f"is at least {diff_lower:.1%} above production's (margin {policy.margin:.1%}, "
                    f"alpha {policy.alpha})", test)
        return (CanaryAction.HOLD, f"not yet shown not worse: the error rate may be up to {diff_upper:.1%} "
                f"above production's (margin {policy.margin:.1%})", test)
    nxt = policy.next_share(share)
    if not policy.auto_promote:
        return (CanaryAction.HOLD, "not worse than production, but automatic promotion is off "
                "(deployment.auto_promote in ft_ops_config.yaml, or FTOPS_CANARY_AUTO_PROMOTE); a person "
                "promotes it", test)
    if nxt >= 1.0 and not period_over:
        return (CanaryAction.HOLD, f"not worse than production (difference below {diff_upper:.1%} < margin "
                f"{policy.margin:.1%}); production waits for the end of its canary period", test)
    action = CanaryAction.PROMOTE if nxt >= 1.0 else CanaryAction.STAGE
    return (action, f"not worse than production (error rate difference below {diff_upper:.1%} < margin "
            f"{policy.margin:.1%} at alpha {policy.alpha}); {share:.0%} -> {nxt:.0%}", test)


def _record(*, deployment: Deployment, action: str, by: Actor, automatic: bool, reason: str,
            share_before: float, share_after: float, numbers: dict[str, Any]) -> CanaryDecision:
    version = deployment.model_version
    decision = CanaryDecision.objects.create(
        deployment=deployment, model_version=version, scope=deployment.scope, action=action, automatic=automatic,
        decided_by=by.label[:200], reason=reason, share_before=share_before, share_after=share_after,
        numbers=numbers)
    audit_record(action=AuditAction.CANARY_DECIDED, by=by, object_type="model_version", object_id=version.pk,
                 detail={"decision_id": decision.pk, "action": action, "scope": deployment.scope,
                         "automatic": automatic, "reason": reason, "share_before": share_before,
                         "share_after": share_after, "numbers": numbers})
    _notify(decision, version_name=version.name)
    return decision


def _notify(decision: CanaryDecision, *, version_name: str) -> None:
    from ftops.common.notifications import notify

    label = CanaryAction(decision.action).label.lower()
    subject = f"Canary {version_name} in {decision.scope}: {label}"
    text = f"{subject} ({'automatic' if decision.automatic else decision.decided_by}): {decision.reason}"
    payload = {"decision_id": decision.pk, "action": decision.action, "model_version": version_name,
               "scope": decision.scope, "share_before": decision.share_before,
               "share_after": decision.share_after, "numbers": decision.numbers}
    try:
        notify(audience="approvers", subject=subject, text=text, payload=payload,
               service=None if decision.scope == ENTERPRISE_SCOPE else decision.scope)
    except Exception:  # a notification problem must never undo a rollback
        log.exception("canary: notifying approvers failed: %s", subject)


def _numbers_dict(numbers: dict[str, ArmNumbers | None], since: datetime, test: dict[str, Any]) -> dict[str, Any]:
    return {"since": since.isoformat(), "test": test,
            **{arm: (value.as_dict() if value is not None else None) for arm, value in numbers.items()}}


def canary_check(*, deployment_id: int, now: datetime | None = None) -> CheckResult:
    """Judge one canary and take at most one step. Two checkers at once are harmless: the
    deployment row is locked, and a canary that ended meanwhile is left alone."""
    now = now or timezone.now()
    policy = CanaryPolicy.current()
    with transaction.atomic():
        deployment = (Deployment.objects.select_for_update().select_related("model_version")
                      .filter(pk=deployment_id).first())
        if deployment is None:
            raise NotFound(f"no deployment {deployment_id}")
        if deployment.state != DeploymentState.CANARY:
            return CheckResult(deployment_id, "ended", f"the deployment is {deployment.state}", 0.0, {})
        traffic = _traffic(deployment, policy, lock=True)
        since = traffic.stage_started_at
        numbers = canary_numbers(deployment=deployment, since=since)
        canary, production = numbers["canary"], numbers["production"]
        assert canary is not None
        if traffic.paused:
            return CheckResult(deployment_id, "paused", "paused by a person", traffic.share,
                               _numbers_dict(numbers, since, {}))
        hours, ends_at = canary_period(deployment, traffic, policy)
        over = now >= ends_at
        action, reason, test = judge(canary=canary, production=production, share=traffic.share, policy=policy,
                                     period_over=over)
        test["period"] = {"hours": hours, "ends_at": ends_at.isoformat(), "over": over}
        recorded = _numbers_dict(numbers, since, test)
        by = Actor.system(CHECKER)
        if action == CanaryAction.HOLD:
            if over:
                return _extend(deployment, traffic, reason=reason, hours=hours, numbers=recorded, by=by, now=now)
            return CheckResult(deployment_id, action, reason, traffic.share, recorded)
        decision = _apply(deployment, traffic, action=action, by=by, automatic=True, reason=reason,
                          numbers=recorded, now=now, policy=policy)
        return CheckResult(deployment_id, action, reason, decision.share_after, recorded, decision.pk)


def canary_period(deployment: Deployment, traffic: CanaryTraffic, policy: CanaryPolicy) -> tuple[float, datetime]:
    """(hours, end) of a canary's period: its own duration if one was set at start, else the config's."""
    hours = traffic.duration_hours if traffic.duration_hours is not None else policy.duration_hours
    return float(hours), deployment.created_at + timedelta(hours=float(hours))


def _extend(deployment: Deployment, traffic: CanaryTraffic, *, reason: str, hours: float, numbers: dict[str, Any],
            by: Actor, now: datetime) -> CheckResult:
    """The period is over and the evidence does not decide: keep running, say why on the row, and
    record it (decision, audit, approvers told) the first time only; later checks update the note."""
    note = f"its {hours:g} h canary period is over; it keeps running: {reason}"
    decision_id: int | None = None
    if traffic.overdue_since is None:
        traffic.overdue_since = now
        decision = _record(deployment=deployment, action=CanaryAction.EXTEND, by=by, automatic=True, reason=note,
                           share_before=traffic.share, share_after=traffic.share, numbers=numbers)
        decision_id = decision.pk
    if traffic.note != note or decision_id is not None:
        traffic.note = note
        traffic.save(update_fields=["note", "overdue_since", "updated_at"])
    return CheckResult(deployment.pk, CanaryAction.EXTEND if decision_id else CanaryAction.HOLD, note, traffic.share,
                       numbers, decision_id)


def canary_start(*, model_version_id: int, by: Actor, scope: str = "", reason: str = "",
                 duration_hours: float | None = None) -> Deployment:
    """Start a canary (the registry's ``canary_start``) with its own period; ``None`` takes
    ``deployment.canary_duration_hours`` from ft_ops_config.yaml when the checker looks."""
    from registry.services import canary_start as registry_canary_start

    if duration_hours is not None and not 0 <= duration_hours <= MAX_DURATION_HOURS:
        raise ValidationFailed(f"duration_hours must lie between 0 and {MAX_DURATION_HOURS}",
                               fields={"duration_hours": [str(duration_hours)]})
    policy = CanaryPolicy.current()
    label = f"canary for {duration_hours:g} h" if duration_hours is not None else "canary"
    with transaction.atomic():
        deployment = registry_canary_start(model_version_id=model_version_id, by=by, scope=scope,
                                           reason=f"{reason} ({label})" if reason else label)
        CanaryTraffic.objects.update_or_create(
            deployment=deployment, defaults={"share": policy.initial_share, "stage": 0,
                                             "stage_started_at": deployment.created_at,
                                             "duration_hours": duration_hours})
    return deployment


def _apply(deployment: Deployment, traffic: CanaryTraffic, *, action: str, by: Actor, automatic: bool,
           reason: str, numbers: dict[str, Any], now: datetime, policy: CanaryPolicy) -> CanaryDecision:
    from registry.services import canary_promote, canary_rollback

    before = traffic.share
    after = before
    if action == CanaryAction.ROLLBACK:
        canary_rollback(model_version_id=deployment.model_version_id, by=by, scope=deployment.scope,
                        reason=f"canary rolled back: {reason}")
        after = 0.0
    elif action == CanaryAction.PROMOTE:
        canary_promote(model_version_id=deployment.model_version_id, by=by, scope=deployment.scope,
                       reason=f"canary promoted: {reason}")
        after = 1.0
    elif action == CanaryAction.STAGE:
        after = policy.next_share(before)
        traffic.stage += 1
    elif action == CanaryAction.PAUSE:
        traffic.paused = True
    elif action == CanaryAction.RESUME:
        traffic.paused = False
    if action in (CanaryAction.STAGE, CanaryAction.PAUSE, CanaryAction.RESUME):
        traffic.share = after
        # A new stage, or traffic after a pause, is judged on what it does from now on.
        traffic.stage_started_at = now
        traffic.note = ""  # a step was taken: whatever kept it waiting no longer holds
        traffic.save(update_fields=["share", "stage", "paused", "stage_started_at", "note", "updated_at"])
    return _record(deployment=deployment, action=action, by=by, automatic=automatic, reason=reason,
                   share_before=before, share_after=after if action != CanaryAction.PAUSE else 0.0,
                   numbers=numbers)


def canaries_check_all(*, now: datetime | None = None) -> list[CheckResult]:
    """Every running canary, each judged on its own; one failing check never stops the others."""
    results: list[CheckResult] = []
    ids = list(Deployment.objects.filter(state=DeploymentState.CANARY).order_by("pk").values_list("pk", flat=True))
    for deployment_id in ids:
        try:
            results.append(canary_check(deployment_id=deployment_id, now=now))
        except (Conflict, NotFound) as exc:  # ended or changed by a person meanwhile
            log.info("canary %s: %s", deployment_id, exc)
        except Exception:
            log.exception("canary %s: the check failed", deployment_id)
    return results


def canary_act(*, deployment_id: int, action: str, by: Actor, reason: str = "",
               now: datetime | None = None) -> CanaryDecision:
    """A person's step from the deployments page: promote now, pause, resume or roll back now."""
    manual = {CanaryAction.PROMOTE, CanaryAction.PAUSE, CanaryAction.RESUME, CanaryAction.ROLLBACK}
    if action not in manual:
        raise ValidationFailed(f"unknown canary action '{action}'",
                               fields={"action": [f"one of {', '.join(sorted(manual))}"]})
    reason = reason.strip()
    if action == CanaryAction.ROLLBACK and not reason:
        raise ValidationFailed("a rollback needs a reason", fields={"reason": ["say what went wrong"]})
    now = now or timezone.now()
    policy = CanaryPolicy.current()
    with transaction.atomic():
        deployment = (Deployment.objects.select_for_update().select_related("model_version")
                      .filter(pk=deployment_id).first())
        if deployment is None:
            raise NotFound(f"no deployment {deployment_id}")
        if deployment.state != DeploymentState.CANARY:
            raise Conflict(f"{deployment.model_version.name} is no longer a canary (it is {deployment.state})")
        traffic = _traffic(deployment, policy, lock=True)
        if action == CanaryAction.PAUSE and traffic.paused:
            raise Conflict("the canary is already paused")
        if action == CanaryAction.RESUME and not traffic.paused:
            raise Conflict("the canary is not paused")
        numbers = _numbers_dict(canary_numbers(deployment=deployment, since=traffic.stage_started_at),
                                traffic.stage_started_at, {})
        if action == CanaryAction.RESUME:
            traffic.share = traffic.share or policy.initial_share
        return _apply(deployment, traffic, action=action, by=by, automatic=False,
                      reason=reason or f"{CanaryAction(action).label} by {by.label}", numbers=numbers, now=now,
                      policy=policy)


def canary_share(*, deployment: Deployment) -> float | None:
    """The share the router sends to this canary, or None when no stage was recorded yet."""
    row = CanaryTraffic.objects.filter(deployment=deployment).values_list("share", "paused").first()
    if row is None:
        return None
    return 0.0 if row[1] else float(row[0])


def canary_window_start(deployment: Deployment, hours: float) -> datetime:
    return max(deployment.created_at, timezone.now() - timedelta(hours=hours))
