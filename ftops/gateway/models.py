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
