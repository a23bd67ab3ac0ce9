"""Model versions: what a training run produced, with its lineage."""

from __future__ import annotations

from django.db import models


class ModelVersion(models.Model):
    """One trained model (LoRA adapter, OpenAI fine-tune or few-shot prompt) with lineage.

    ``card`` is the model card (config, data, metrics); ``metrics`` holds evaluation results
    as they are added. Gates, approvals and deployments build on this row.
    """

    name = models.CharField(max_length=200)
    semver = models.CharField(max_length=40)
    base_model = models.CharField(max_length=300)
    adapter_path = models.CharField(max_length=500, blank=True, help_text="Adapter folder, prompt file or model id")
    training_run = models.ForeignKey(
        "training.TrainingRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="model_versions"
    )
    dataset_version = models.ForeignKey(
        "datasets.DatasetVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="model_versions"
    )
    metrics = models.JSONField(default=dict, blank=True)
    card = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["name", "semver"], name="uniq_model_name_semver")]

    def __str__(self) -> str:
        return f"{self.name} {self.semver}"
