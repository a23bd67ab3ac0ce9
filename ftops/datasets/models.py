"""Training examples (the per-tool training format) and dataset versions built from them."""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import models

from ftops.catalog.models import Service, Tool, ToolSchemaVersion
from ftops.common.jobs import Job, text_error
from ftops.common.models import TimeStampedModel


class Behavior(models.TextChoices):
    CALL = "call", "Call (one or more, parallel allowed)"
    SEQUENCE = "sequence", "Multi-step sequence"
    CLARIFY = "clarify", "Clarify"
    ASK_FOR_DETAILS = "ask_for_details", "Ask for details"
    ABSTAIN = "abstain", "Abstain (no relevant tool)"


class Source(models.TextChoices):
    MANUAL = "manual", "Manual"
    PRODUCTION = "production", "Production"
    CORRECTION = "correction", "Review correction"
    SYNTHETIC = "synthetic", "Synthetic"
    DISCOVERED = "discovered", "Discovered (service endpoint)"


class Quality(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"


class ExampleStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    FLAGGED = "flagged", "Flagged (schema changed)"
    ARCHIVED = "archived", "Archived"


class TrainingExample(TimeStampedModel):
    """One example of the expected behaviour for a request.

    ``expected`` by behaviour:
      call:            {"calls": [{"name": str, "arguments": {param: [acceptable values]}}]}
                       (BFCL possible-answer model; "" among the values = may be omitted)
      sequence:        {"steps": [{"name": str, "arguments": {param: value or "{prev.field}"}}]}
      clarify:         {"question": str, "reason": str}
      ask_for_details: {"required_fields": [str], "question": str}
      abstain:         {"reason": str}
    ``messages`` is the conversation up to the request (the last user message is the query);
    ``tools`` lists the offered tool names (their schemas come from ``schema_version``s).
    """

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="examples")
    tool = models.ForeignKey(Tool, null=True, blank=True, on_delete=models.SET_NULL, related_name="examples")
    schema_version = models.ForeignKey(
        ToolSchemaVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="examples"
    )
    user_query = models.TextField()
    messages = models.JSONField(default=list, blank=True)
    tools = models.JSONField(default=list, blank=True)
    behavior = models.CharField(max_length=20, choices=Behavior.choices, default=Behavior.CALL)
    expected = models.JSONField(default=dict)
    explanation = models.TextField(blank=True)
    common_mistakes = models.JSONField(default=list, blank=True)
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.MANUAL, db_index=True)
    quality = models.CharField(max_length=10, choices=Quality.choices, default=Quality.MEDIUM, db_index=True)
    status = models.CharField(max_length=10, choices=ExampleStatus.choices, default=ExampleStatus.ACTIVE)
    interaction = models.ForeignKey(
        "interactions.Interaction", null=True, blank=True, on_delete=models.SET_NULL, related_name="examples"
    )
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="derived")
    provenance = models.JSONField(default=dict, blank=True)
    content_hash = models.CharField(max_length=64, db_index=True)
    tool_versions = models.JSONField(
        default=dict, blank=True, help_text="Schema version number of every tool the example names, when written"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["service", "tool"], name="ix_example_service_tool")]
        constraints = [
            # An interaction yields at most one production example (collection is idempotent).
            models.UniqueConstraint(
                fields=["interaction"], condition=models.Q(source="production"), name="uniq_production_interaction"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.behavior}: {self.user_query[:60]}"


class Split(models.TextChoices):
    TRAIN = "train", "Train"
    VALIDATION = "validation", "Validation"
    TEST = "test", "Test"
    HOLDOUT = "holdout", "Holdout"


class Dimension(models.TextChoices):
    SEEN_PHRASING = "seen_phrasing", "Seen phrasings"
    NEW_PHRASING = "new_phrasing", "New phrasings"
    ZERO_SHOT_TOOL = "zero_shot_tool", "Zero-shot tools"
    MULTI_STEP = "multi_step", "Multi-step"


class RunStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class CurationJob(Job):
    """What dataset builds and curation runs share as jobs (``ftops.common.jobs``).

    They keep the words users know: "ready" when done, a percent in ``progress``, the error
    as text. The runtime's lease, heartbeat, attempts and times come from ``Job``.
    """

    succeeded_status: ClassVar[str] = RunStatus.READY
    progress_scale: ClassVar[float] = 100.0

    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.PENDING, db_index=True)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent done")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        abstract = True

    @classmethod
    def error_value(cls, error: dict[str, Any] | None) -> Any:
        return text_error(error)


class DatasetVersion(CurationJob):
    """An immutable, content-hashed snapshot of examples split for training and evaluation.

    Built once (status pending -> running -> ready); afterwards only read. Members keep a
    snapshot of each record so later edits of an example never change a built version. The
    build is a job: claimed under a lease, heartbeated, and re-queued by the reaper when its
    worker dies; the next worker builds it from the start (members are written only at the end).
    """

    Status = RunStatus
    lease_setting: ClassVar[str] = "FTOPS_DATASET_BUILD_LEASE_S"

    number = models.PositiveIntegerField(unique=True)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent done while building")
    progress_message = models.CharField(max_length=200, blank=True)
    seed = models.IntegerField(default=0)
    params = models.JSONField(default=dict, blank=True)
    content_hash = models.CharField(max_length=64, blank=True, db_index=True)
    source_mix = models.JSONField(default=dict, blank=True)
    counts = models.JSONField(default=dict, blank=True, help_text="Examples per split and dimension")
    quality_report = models.JSONField(default=dict, blank=True)
    created_by = models.CharField(max_length=200, blank=True)
    built_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-number"]
        indexes = [models.Index(fields=["status", "lease_expires_at"], name="ix_dsversion_status_lease")]

    def __str__(self) -> str:
        return f"dataset v{self.number}"


class DatasetMembership(models.Model):
    version = models.ForeignKey(DatasetVersion, on_delete=models.CASCADE, related_name="members")
    example = models.ForeignKey(TrainingExample, on_delete=models.PROTECT, related_name="memberships")
    split = models.CharField(max_length=12, choices=Split.choices, db_index=True)
    dimension = models.CharField(max_length=16, choices=Dimension.choices, blank=True)
    position = models.PositiveIntegerField(help_text="Fixed order within the version")
    snapshot = models.JSONField(help_text="The Record as built (immutable)")

    class Meta:
        ordering = ["version_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["version", "example"], name="uniq_membership_example"),
        ]
        indexes = [
            models.Index(fields=["version", "split", "dimension"], name="ix_membership_split"),
            # The version diff joins two versions on the example id from this index alone
            # (PostgreSQL: an index-only scan; SQLite ignores the included columns).
            models.Index(fields=["version", "example"], include=["split", "dimension"], name="ix_membership_diff"),
        ]

    def __str__(self) -> str:
        return f"v{self.version_id} {self.split}: {self.example_id}"


class EmbeddingCache(models.Model):
    """Sentence embeddings keyed by sha256 of (model, text): nothing is embedded twice."""

    key = models.CharField(max_length=64, unique=True)
    model = models.CharField(max_length=100)
    dim = models.PositiveSmallIntegerField()
    vector = models.BinaryField(help_text="float32, little-endian, L2-normalised")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.key


class CurationRun(CurationJob):
    """One curation pass run on the queue. Kinds ``triggers`` and ``scheduled`` hand the retraining
    triggers to the loop (``ftops.loop``) by task name once the pass committed."""

    class Kind(models.TextChoices):
        COLLECT = "collect", "Collect production examples"
        TRIGGERS = "triggers", "Evaluate triggers"
        SCHEDULED = "scheduled", "Collect, then evaluate triggers"

    lease_setting: ClassVar[str] = "FTOPS_CURATION_LEASE_S"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    params = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "lease_expires_at"], name="ix_curationrun_status_lease")]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} {self.status}"
