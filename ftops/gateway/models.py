"""Per-arm outcomes of gateway traffic, for whoever judges a canary.

One row per (model version, scope, arm, minute): how many calls were answered, how many
failed upstream or were answered by production instead (fallback), how many of the answered
calls broke their tool schemas, and the latency distribution as counts in fixed buckets
(``LATENCY_BUCKETS_MS``), so p50/p95 over any window is a sum of rows, not a scan of
interactions. Written by the gateway's background writer (``services.arm_outcomes_record``),
read by ``selectors.arm_outcomes``.
"""

from __future__ import annotations

from django.db import models

# Upper bounds (ms) of the latency buckets; a last, open bucket holds everything slower.
LATENCY_BUCKETS_MS: tuple[int, ...] = (
    5, 10, 25, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000, 30000, 60000,
)


class Arm(models.TextChoices):
    PRODUCTION = "production", "Production"
    CANARY = "canary", "Canary"
    DIRECT = "direct", "Named version (no split)"


class ArmOutcome(models.Model):
    model_version = models.ForeignKey("registry.ModelVersion", on_delete=models.CASCADE, related_name="+")
    scope = models.CharField(max_length=100, help_text="The deployment's scope: a service or 'enterprise'")
    arm = models.CharField(max_length=12, choices=Arm.choices)
    minute = models.DateTimeField(help_text="Start of the minute the calls finished in (UTC)")
    calls = models.PositiveIntegerField(default=0, help_text="Calls this version answered")
    upstream_errors = models.PositiveIntegerField(default=0, help_text="Upstream failures and timeouts")
    timeouts = models.PositiveIntegerField(default=0)
    fallbacks = models.PositiveIntegerField(default=0, help_text="Canary failures answered by production")
    schema_invalid = models.PositiveIntegerField(default=0, help_text="Answered calls with schema-invalid calls")
    latency_sum_ms = models.FloatField(default=0)
    latency_buckets = models.JSONField(default=list, help_text="Counts per LATENCY_BUCKETS_MS bucket, then '+inf'")

    class Meta:
        ordering = ["-minute", "id"]
        constraints = [
            models.UniqueConstraint(fields=["model_version", "scope", "arm", "minute"], name="uniq_arm_outcome_minute"),
        ]
        indexes = [models.Index(fields=["model_version", "minute"], name="arm_outcome_version_minute")]

    def __str__(self) -> str:
        return f"{self.model_version_id} {self.arm} in {self.scope} at {self.minute:%H:%M}"


# --- canary decisions and shadow comparisons (ftops.gateway.canary, ftops.gateway.shadow) ----------


class CanaryTraffic(models.Model):
    """The share of a service's traffic its canary takes now; the router reads it (``selectors``).

    Kept beside the registry's ``Deployment`` rather than on it: the staged promotion is the
    gateway's business, and a canary with no row here takes the configured ``canary_traffic``.
    """

    deployment = models.OneToOneField("registry.Deployment", on_delete=models.CASCADE, related_name="traffic_share")
    share = models.FloatField(help_text="0..1 of the service's conversations the canary answers")
    stage = models.PositiveSmallIntegerField(default=0, help_text="Index into FTOPS_CANARY_STAGES")
    stage_started_at = models.DateTimeField(help_text="Metrics for the next decision are counted from here")
    paused = models.BooleanField(default=False, help_text="Paused: no traffic and no automatic decision")
    duration_hours = models.FloatField(null=True, blank=True,
                                       help_text="This canary's period; empty: deployment.canary_duration_hours")
    note = models.TextField(blank=True, help_text="Why it is still running after its period, when it is")
    overdue_since = models.DateTimeField(null=True, blank=True,
                                         help_text="When the checker first found its period over and kept it running")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"canary {self.deployment_id} at {self.share:.0%}"


class CanaryAction(models.TextChoices):
    HOLD = "hold", "Hold (not enough evidence yet)"
    STAGE = "stage", "Promoted to the next stage"
    PROMOTE = "promote", "Promoted to production"
    ROLLBACK = "rollback", "Rolled back"
    PAUSE = "pause", "Paused"
    RESUME = "resume", "Resumed"
    EXTEND = "extend", "Kept running past its period"


class CanaryDecision(models.Model):
    """One judgement of a canary with the numbers it was made on; automatic and manual alike."""

    deployment = models.ForeignKey("registry.Deployment", on_delete=models.CASCADE, related_name="canary_decisions")
    model_version = models.ForeignKey("registry.ModelVersion", on_delete=models.CASCADE, related_name="+")
    scope = models.CharField(max_length=100)
    action = models.CharField(max_length=12, choices=CanaryAction.choices)
    automatic = models.BooleanField(default=True)
    decided_by = models.CharField(max_length=200)
    reason = models.TextField()
    share_before = models.FloatField()
    share_after = models.FloatField()
    numbers = models.JSONField(default=dict, help_text="Per-arm counts, rates, p50/p95, agreement and the test")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["deployment", "created_at"], name="canary_decision_deploy_ts")]

    def __str__(self) -> str:
        return f"{self.action} {self.model_version_id} in {self.scope}"


class ShadowDeployment(models.Model):
    """A version that receives a copy of a scope's production traffic; its answers reach nobody."""

    model_version = models.ForeignKey("registry.ModelVersion", on_delete=models.CASCADE, related_name="+")
    scope = models.CharField(max_length=100, db_index=True)
    active = models.BooleanField(default=True)
    sample_rate = models.FloatField(default=1.0, help_text="Share of production calls copied (0..1]")
    created_by = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["model_version", "scope"], condition=models.Q(active=True),
                                    name="uniq_active_shadow"),
        ]

    def __str__(self) -> str:
        return f"shadow {self.model_version_id} in {self.scope}"


class ShadowComparison(models.Model):
    """One production call answered again by a shadow version: do the calls agree?"""

    shadow = models.ForeignKey(ShadowDeployment, on_delete=models.CASCADE, related_name="comparisons")
    model_version = models.ForeignKey("registry.ModelVersion", on_delete=models.CASCADE, related_name="+")
    call_id = models.CharField(max_length=100, help_text="The production call's id (the interaction's id)")
    production_version = models.CharField(max_length=200)
    service = models.CharField(max_length=100)
    tools_agree = models.BooleanField(default=False, help_text="Same tool names, in the same multiset")
    arguments_agree = models.BooleanField(default=False, help_text="Same tools with equal arguments")
    error = models.CharField(max_length=200, blank=True, help_text="The shadow upstream's failure, if any")
    latency_ms = models.FloatField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["model_version", "created_at"], name="shadow_cmp_version_ts")]

    def __str__(self) -> str:
        return f"{self.call_id} vs {self.model_version_id}"
