"""Evaluation suites, runs and their failures."""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import models

from ftops.common.jobs import Job, text_error
from ftops.common.models import TimeStampedModel


class SuiteKind(models.TextChoices):
    DATASET = "dataset", "Dataset version split"
    BFCL = "bfcl", "Imported BFCL suite"


class EvalSuite(TimeStampedModel):
    """What a run is scored on: one split of a dataset version, or imported BFCL entries.

    Dataset suites read their records from the (immutable) dataset version; imported suites
    keep theirs as ``EvalCase`` rows. A suite that runs point at is never rewritten.
    """

    name = models.CharField(max_length=120, unique=True)
    kind = models.CharField(max_length=10, choices=SuiteKind.choices)
    dataset_version = models.ForeignKey(
        "datasets.DatasetVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="eval_suites"
    )
    split = models.CharField(max_length=12, blank=True)
    source = models.CharField(max_length=300, blank=True, help_text="Where imported cases came from")
    content_hash = models.CharField(max_length=64, blank=True)
    case_count = models.PositiveIntegerField(default=0)
    categories = models.JSONField(default=dict, blank=True, help_text="Cases per category")

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["dataset_version", "split"], condition=models.Q(kind="dataset"), name="uniq_eval_suite_split"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class EvalCase(models.Model):
    """One record of an imported suite (``Record.to_dict()``)."""

    suite = models.ForeignKey(EvalSuite, on_delete=models.CASCADE, related_name="cases")
    position = models.PositiveIntegerField()
    case_id = models.CharField(max_length=120)
    category = models.CharField(max_length=40, db_index=True)
    record = models.JSONField()

    class Meta:
        ordering = ["suite_id", "position"]
        constraints = [models.UniqueConstraint(fields=["suite", "case_id"], name="uniq_eval_case")]

    def __str__(self) -> str:
        return self.case_id


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class EvalRun(Job):
    """One model scored on one suite: a job of the shared runtime (``ftops.common.jobs``).

    Claimed under a lease, heartbeated while the model answers, finished only by its owner; the
    reaper re-queues a run whose worker died, and the next worker scores it from the start.
    Users keep seeing "queued" and ``progress_done`` / ``progress_total``; ``error`` is text.

    The model is named by ``adapter_config`` (see ``ftops.core.adapters``) and, when
    it came from the registry, by ``model_version_id``. That is a plain id rather than a
    foreign key because the registry reads evaluation results (its gates depend on this
    app), and two apps pointing at each other would make their migrations circular.
    """

    Status = RunStatus
    lease_setting: ClassVar[str] = "FTOPS_EVALUATION_LEASE_S"
    pending_status: ClassVar[str] = RunStatus.QUEUED

    name = models.CharField(max_length=200, blank=True)
    suite = models.ForeignKey(EvalSuite, on_delete=models.PROTECT, related_name="runs")
    model_version_id = models.PositiveBigIntegerField(null=True, blank=True, db_index=True)
    model_label = models.CharField(max_length=200, blank=True)
    adapter_config = models.JSONField(default=dict)
    case_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Score only the first N cases")
    category_filter = models.JSONField(default=list, blank=True, help_text="Score only these categories")
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=3)
    error = models.TextField(blank=True)
    exact = models.FloatField(null=True, blank=True, help_text="Exact-match accuracy in percent")
    metrics = models.JSONField(default=dict, blank=True)
    created_by = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "lease_expires_at"], name="ix_evalrun_status_lease")]

    @classmethod
    def error_value(cls, error: dict[str, Any] | None) -> Any:
        return text_error(error)

    def __str__(self) -> str:
        return f"eval #{self.pk} {self.model_label or self.adapter_config.get('kind', '')} on {self.suite_id}"

    @property
    def progress_percent(self) -> int:
        return int(100 * self.progress_done / self.progress_total) if self.progress_total else 0

    @property
    def is_finished(self) -> bool:
        return self.status in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


class EvalFailure(models.Model):
    """A case a run got wrong: what was expected, what came back and which rule it broke."""

    run = models.ForeignKey(EvalRun, on_delete=models.CASCADE, related_name="failures")
    record_id = models.CharField(max_length=120)
    category = models.CharField(max_length=40, db_index=True)
    service = models.CharField(max_length=120, blank=True)
    tool = models.CharField(max_length=200, blank=True)
    dimension = models.CharField(max_length=20, blank=True)
    behavior = models.CharField(max_length=20, blank=True)
    error_type = models.CharField(max_length=80, db_index=True)
    error = models.TextField(blank=True)
    user_query = models.TextField(blank=True)
    expected = models.JSONField(default=dict)
    got = models.JSONField(default=dict)
    raw = models.TextField(blank=True)
    partial = models.JSONField(default=dict, blank=True, help_text="tool/args/values flags")

    class Meta:
        ordering = ["run_id", "id"]
        constraints = [models.UniqueConstraint(fields=["run", "record_id"], name="uniq_eval_failure")]

    def __str__(self) -> str:
        return f"{self.record_id}: {self.error_type}"
