"""Captured production interactions (after PII redaction) and their feedback."""

from __future__ import annotations

from django.db import models

from ftops.catalog.models import Service
from ftops.common.jobs import Job, JobStatus
from ftops.common.models import ApiKey

INTERNAL_SCOPE = "internal"


def idempotency_scope(api_key: ApiKey | None) -> str:
    """Whose id space an interaction id (and a batch key) lives in: the API key that sent it.

    The project has no tenant or account model: an API key is the only identity an ingesting
    client has, and an ingest key is not bound to a service (any ingest key may post to any
    service). Scoping ids to the service would therefore still let one client probe for, or
    claim first, another client's ids on a shared service; scoping to the key cannot, and it
    is the same boundary the read side already uses (an ingest-only key sees only what it
    ingested). Callers without a key (the web session, the CLI, the demo) share one internal
    scope. The scope is a string rather than a foreign key so that deleting a key never
    merges its ids into another scope, and so a later owner model (an account holding several
    keys, which would also survive key rotation) can become ``account:<id>`` without a new
    column. The cost today: a rotated key starts a new id space, so finish retries with the
    old key before revoking it.
    """
    return f"key:{api_key.pk}" if api_key is not None else INTERNAL_SCOPE


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
    external_id = models.CharField(max_length=200, db_index=True, help_text="Client-supplied id, unique per scope")
    # db_default too: rows written by raw SQL (a COPY baseline, a restore) land in the internal scope.
    scope = models.CharField(
        max_length=64, default=INTERNAL_SCOPE, db_default=INTERNAL_SCOPE,
        help_text="Idempotency scope: 'key:<api key id>' or 'internal'",
    )
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
        constraints = [
            # Idempotency per owner (see idempotency_scope): another key's id neither blocks nor leaks.
            models.UniqueConstraint(fields=["scope", "external_id"], name="uq_interaction_scope_external_id"),
        ]
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


# Batches use the shared job runtime's statuses (pending, running, succeeded, failed, cancelled).
BatchStatus = JobStatus


class IngestBatch(Job):
    """A batch accepted for ingestion on the ``ingestion`` queue rather than in the request.

    ``rows`` holds the batch already validated, checked against the schemas and redacted
    (the same preparation as the synchronous path), so no raw PII is stored even while a
    batch waits. The row is also the outbox: it is committed first, its task is published
    after the commit, and a batch whose publish failed (broker down) or whose worker died is
    published again by the sender and the reaper (``ftops.common.jobs``). A worker claims it
    under a lease, stores the interactions and marks the batch finished in one transaction.

    ``batch_key`` makes the request itself idempotent: the client's ``Idempotency-Key``
    header, or else a hash of the batch's ids and bodies, unique within the sender's scope.
    """

    rows = models.JSONField(default=list, help_text="Prepared (redacted) interactions; cleared when done")
    size = models.PositiveIntegerField(default=0)
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    scope = models.CharField(max_length=64, default=INTERNAL_SCOPE, help_text="Idempotency scope of its ids")
    batch_key = models.CharField(max_length=200, blank=True, help_text="Idempotency key of the request")
    content_hash = models.CharField(max_length=64, blank=True, help_text="Hash of the ids and bodies sent")
    result = models.JSONField(default=dict, blank=True)

    lease_setting = "FTOPS_INGEST_LEASE_S"

    class Meta(Job.Meta):
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["scope", "batch_key"], condition=~models.Q(batch_key=""), name="uq_ingestbatch_scope_key"
            ),
        ]

    def __str__(self) -> str:
        return f"batch {self.pk} ({self.status}, {self.size})"
