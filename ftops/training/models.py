"""Training runs: one row per LoRA / OpenAI fine-tuning / few-shot prompt run.

A run is a job of the shared runtime (``ftops.common.jobs``): durability lives on the row,
not in the broker. A worker claims a run by a conditional UPDATE that sets ``lease_owner``
and ``lease_expires_at``, extends the lease with every heartbeat, and the reaper puts runs
whose lease ran out back in the queue, where the next worker resumes from the newest
checkpoint. Users keep seeing "queued" for a waiting run and a percent in ``progress``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import models

from ftops.common.jobs import Job, text_error


class Backend(models.TextChoices):
    LORA = "lora", "Local LoRA (transformers + peft)"
    OPENAI = "openai", "OpenAI fine-tuning"
    FEWSHOT = "fewshot", "Few-shot prompt"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)
FINAL_STATUSES = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


class TrainingRun(Job):
    lease_setting: ClassVar[str] = "FTOPS_TRAINING_LEASE_S"
    pending_status: ClassVar[str] = RunStatus.QUEUED
    progress_scale: ClassVar[float] = 100.0

    name = models.CharField(max_length=200, blank=True)
    backend = models.CharField(max_length=10, choices=Backend.choices, db_index=True)
    base_model = models.CharField(max_length=300, help_text="Hugging Face id, local folder or OpenAI model")
    config = models.JSONField(default=dict, blank=True, help_text="The backend's full typed config, as JSON")
    dataset_version = models.ForeignKey(
        "datasets.DatasetVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="training_runs"
    )
    service = models.CharField(max_length=100, blank=True, help_text="Per-service run: train on this service only")
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True)
    progress = models.FloatField(default=0.0, help_text="Percent done")
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    eta_seconds = models.FloatField(null=True, blank=True)
    loss_series = models.JSONField(default=list, blank=True, help_text="[[step, loss], ...]")
    val_loss_series = models.JSONField(default=list, blank=True, help_text="[[step, val_loss], ...]")
    log_tail = models.TextField(blank=True, help_text="The last lines of the run's log")
    metrics = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    # artifacts
    artifact_path = models.CharField(max_length=500, blank=True, help_text="Adapter folder or prompt file")
    artifact_bytes = models.BigIntegerField(default=0)
    artifact = models.JSONField(default=dict, blank=True, help_text="Small artifacts inline (few-shot prompt)")
    # OpenAI and other external ids
    external_ids = models.JSONField(default=dict, blank=True)
    # durability: the lease, heartbeat, attempts and times come from Job
    max_attempts = models.PositiveSmallIntegerField(default=3)
    cancel_requested = models.BooleanField(default=False)
    created_by = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)  # run lists sort on it

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "lease_expires_at"], name="ix_trainrun_status_lease")]

    def __str__(self) -> str:
        return f"training run {self.pk} ({self.backend}, {self.status})"

    @classmethod
    def error_value(cls, error: dict[str, Any] | None) -> Any:
        return text_error(error)

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

