"""Rows the loop keeps: why (and when) a retraining trigger fired, and the improvement cycles."""

from __future__ import annotations

from typing import ClassVar

from django.db import models

from ftops.catalog.models import Service
from ftops.common.jobs import Job


class TriggerKind(models.TextChoices):
    HIGH_QUALITY_EXAMPLES = "high_quality_examples", "New high-quality examples"
    ERROR_PATTERN = "error_pattern", "Recurring error pattern"
    STALE_ACCURACY = "stale_accuracy", "No accuracy gain"


class TriggerEvent(models.Model):
    """Why (and when) a retraining trigger fired. Fingerprints keep a trigger from firing twice
    on the same evidence: each check counts only what arrived after its last firing."""

    kind = models.CharField(max_length=32, choices=TriggerKind.choices, db_index=True)
    service = models.ForeignKey(Service, null=True, blank=True, on_delete=models.CASCADE, related_name="triggers")
    fingerprint = models.CharField(max_length=200, blank=True, help_text="What the trigger is about, for dedupe")
    reason = models.TextField()
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.reason[:60]}"


ENTERPRISE_SCOPE = "enterprise"


class CycleStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class CycleOrigin(models.TextChoices):
    TRIGGER = "trigger", "Trigger"
    SCHEDULE = "schedule", "Schedule"
    MANUAL = "manual", "By hand"


class Cycle(models.Model):
    """One improvement cycle for a scope (the enterprise, or one service): collect, curate, build,
    train, register, evaluate, gates, approval, canary. Its stages are ``CycleStage`` jobs."""

    scope = models.CharField(max_length=200, db_index=True, help_text="'enterprise' or a service name")
    service = models.ForeignKey(Service, null=True, blank=True, on_delete=models.SET_NULL, related_name="cycles")
    status = models.CharField(max_length=12, choices=CycleStatus.choices, default=CycleStatus.RUNNING,
                              db_index=True)
    origin = models.CharField(max_length=10, choices=CycleOrigin.choices)
    reason = models.TextField(blank=True)
    scheduled_for = models.DateTimeField(null=True, blank=True, help_text="The schedule slot that started it")
    backend = models.CharField(max_length=12, blank=True)
    backend_reason = models.TextField(blank=True)
    params = models.JSONField(default=dict, blank=True, help_text="Overrides for the stages (train config, seed)")
    started_by = models.CharField(max_length=200, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # At most one cycle in flight per scope, even when two triggers, the schedule and a
            # person start one at the same moment: the database decides, not a read-then-write.
            models.UniqueConstraint(fields=["scope"], condition=models.Q(status="running"),
                                    name="loop_one_cycle_in_flight_per_scope"),
        ]

    def __str__(self) -> str:
        return f"cycle {self.pk} ({self.scope})"


class CycleStage(Job):
    """One stage of a cycle on the shared job runtime; ``links`` name what it produced."""

    lease_setting: ClassVar[str] = "FTOPS_LOOP_STAGE_LEASE_S"

    cycle = models.ForeignKey(Cycle, on_delete=models.CASCADE, related_name="stages")
    name = models.CharField(max_length=20)
    position = models.PositiveSmallIntegerField()
    log = models.TextField(blank=True)
    note = models.TextField(blank=True, help_text="One line: what the stage did or why it was skipped")
    links = models.JSONField(default=dict, blank=True, help_text="e.g. {training_run: 12, model_version: 3}")
    polls = models.PositiveIntegerField(default=0, help_text="Re-checks of child work so far")

    class Meta(Job.Meta):
        ordering = ["cycle", "position"]
        constraints = [models.UniqueConstraint(fields=["cycle", "name"], name="loop_stage_once_per_cycle")]
        indexes = [models.Index(fields=["status", "lease_expires_at"], name="loop_cyclestage_lease_ix")]

    def __str__(self) -> str:
        return f"{self.cycle_id}:{self.name}"


class CycleTrigger(models.Model):
    """A trigger firing folded into a cycle. A firing with no row here waits for its scope's next cycle."""

    cycle = models.ForeignKey(Cycle, on_delete=models.CASCADE, related_name="folded")
    trigger = models.OneToOneField(TriggerEvent, on_delete=models.CASCADE, related_name="cycle_link")

    def __str__(self) -> str:
        return f"trigger {self.trigger_id} -> cycle {self.cycle_id}"


class HygieneKind(models.TextChoices):
    HOLDOUT_REFRESH = "holdout_refresh", "Holdout refresh"
    ZERO_SHOT_ROTATION = "zero_shot_rotation", "Zero-shot tool rotation"


class HygieneRun(models.Model):
    """One run of scheduled data hygiene: a new dataset version, and the note that says why.

    One row per kind and schedule slot, so a slot never builds twice (two schedulers, a retry);
    a run by hand has its own moment as its slot. No version means the run was skipped (the note says why).
    """

    kind = models.CharField(max_length=20, choices=HygieneKind.choices)
    slot = models.DateTimeField(help_text="The schedule slot (or the moment, by hand) it ran for")
    dataset_version = models.ForeignKey("datasets.DatasetVersion", null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="+")
    base_version_number = models.PositiveIntegerField(null=True, blank=True, help_text="The version it re-split")
    note = models.TextField()
    created_by = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["kind", "slot"], name="loop_hygiene_once_per_slot")]

    def __str__(self) -> str:
        return f"{self.kind} {self.slot:%Y-%m-%d}"
