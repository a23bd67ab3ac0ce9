"""Reads for model versions."""

from __future__ import annotations

from django.db.models import QuerySet

from ftops.common.errors import NotFound
from registry.models import ModelVersion


def model_versions_list(*, name: str | None = None) -> QuerySet[ModelVersion]:
    qs = ModelVersion.objects.select_related("training_run", "dataset_version")
    if name:
        qs = qs.filter(name=name)
    return qs.order_by("-created_at", "-id")


def model_version_get(*, model_version_id: int) -> ModelVersion:
    version = ModelVersion.objects.select_related("training_run", "dataset_version").filter(pk=model_version_id).first()
    if version is None:
        raise NotFound(f"model version {model_version_id} does not exist")
    return version


def model_version_for_run(*, training_run_id: int) -> ModelVersion | None:
    return ModelVersion.objects.filter(training_run_id=training_run_id).first()
