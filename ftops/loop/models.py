"""Rows the loop keeps: why (and when) a retraining trigger fired."""

from __future__ import annotations

from django.db import models

from ftops.catalog.models import Service


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
