"""Captured production interactions (after PII redaction) and their feedback."""

from __future__ import annotations

from django.db import models

from ftops.catalog.models import Service
from ftops.common.models import ApiKey


class CallVerdict(models.TextChoices):
    VALID = "valid", "Valid"
    INVALID = "invalid", "Invalid"
    NO_CALL = "no_call", "No call"


class FailureKind(models.TextChoices):
    """Why an interaction was marked as a failure. Schema kinds come from the verdict."""

    UNKNOWN_TOOL = "unknown_tool", "Unknown tool"
    UNKNOWN_PARAMETER = "unknown_parameter", "Unknown parameter"
    MISSING_REQUIRED = "missing_required", "Missing required parameter"
    TYPE_ERROR = "type_error", "Wrong type"
    VALUE_ERROR = "value_error", "Value not allowed"
    NEGATIVE_FEEDBACK = "negative_feedback", "Negative feedback"
    UNSUCCESSFUL = "unsuccessful", "Reported unsuccessful"


class Interaction(models.Model):
    external_id = models.CharField(max_length=200, unique=True, help_text="Client-supplied id")
    body_hash = models.CharField(max_length=64, help_text="Hash of the submitted body, for idempotent replay")
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="interactions")
    timestamp = models.DateTimeField(db_index=True)
    messages = models.JSONField(default=list)
    tools = models.JSONField(default=list, help_text="Tools offered, OpenAI function format")
    tool_calls = models.JSONField(default=list, help_text="[{name, arguments}] made by the model")
    response_text = models.TextField(blank=True)
    task_type = models.CharField(max_length=100, blank=True)
    user_feedback = models.PositiveSmallIntegerField(null=True, blank=True)
    success = models.BooleanField(null=True)
    confidence = models.FloatField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    tokens_used = models.PositiveIntegerField(null=True, blank=True)
    model_version = models.CharField(max_length=200, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    redactions = models.JSONField(default=dict, blank=True, help_text="PII placeholders inserted, by type")
    call_verdict = models.CharField(max_length=16, choices=CallVerdict.choices, default=CallVerdict.NO_CALL)
    verdict_reason = models.TextField(blank=True)
    is_failure = models.BooleanField(default=False)
    failure_kind = models.CharField(max_length=32, choices=FailureKind.choices, blank=True)
    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", help_text="Key that ingested it"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-timestamp", "-id"]
        indexes = [
            models.Index(fields=["service", "timestamp"], name="ix_interaction_service_ts"),
            models.Index(fields=["is_failure", "timestamp"], name="ix_interaction_failure_ts"),
            # Lets the dashboard's aggregates over a time window read only the index.
            models.Index(
                fields=["timestamp"],
                include=["service_id", "is_failure", "failure_kind"],
                name="ix_interaction_ts_cover",
            ),
        ]

    def __str__(self) -> str:
        return self.external_id

    @property
    def user_query(self) -> str:
        for message in reversed(self.messages or []):
            if message.get("role") == "user":
                return str(message.get("content") or "")
        return ""


class FeedbackEvent(models.Model):
    """Feedback that arrived after the interaction was logged."""

    interaction = models.ForeignKey(Interaction, on_delete=models.CASCADE, related_name="feedback_events")
    score = models.PositiveSmallIntegerField()
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.interaction_id}: {self.score}"


class BatchStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class IngestBatch(models.Model):
    """A batch accepted for ingestion on the ``ingestion`` queue rather than in the request.

    ``rows`` holds the batch already validated, checked against the schemas and redacted
    (the same preparation as the synchronous path), so no raw PII is stored even while a
    batch waits. A worker claims the row (conditional UPDATE pending -> running) and stores
    the interactions with the same idempotency rules as the synchronous API.
    """

    status = models.CharField(max_length=10, choices=BatchStatus.choices, default=BatchStatus.PENDING, db_index=True)
    rows = models.JSONField(default=list, help_text="Prepared (redacted) interactions; cleared when done")
    size = models.PositiveIntegerField(default=0)
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    result = models.JSONField(default=dict, blank=True)
    error = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"batch {self.pk} ({self.status}, {self.size})"
