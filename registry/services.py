"""Writes for model versions."""

from __future__ import annotations

import re
from typing import Any

from django.db import IntegrityError, transaction

from ftops.common.errors import ValidationFailed
from registry.models import ModelVersion

SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


def next_semver(name: str) -> str:
    """The next minor version for ``name`` (0.1.0, 0.2.0 ...): every training run adds capability."""
    best = (0, 0, 0)
    for value in ModelVersion.objects.filter(name=name).values_list("semver", flat=True):
        match = SEMVER.match(value)
        if match:
            best = max(best, (int(match.group(1)), int(match.group(2)), int(match.group(3))))
    return f"{best[0]}.{best[1] + 1}.0"


def model_version_register(
    *,
    name: str,
    base_model: str,
    adapter_path: str = "",
    training_run: Any = None,
    dataset_version: Any = None,
    metrics: dict[str, Any] | None = None,
    card: dict[str, Any] | None = None,
    semver: str | None = None,
) -> ModelVersion:
    """Register a model version; one training run registers at most one version."""
    name = name.strip()
    if not name:
        raise ValidationFailed("a model name is required", fields={"name": ["give the model a name"]})
    if semver is not None and not SEMVER.match(semver):
        raise ValidationFailed(f"{semver!r} is not MAJOR.MINOR.PATCH", fields={"semver": ["e.g. 1.2.0"]})
    if training_run is not None:
        existing = ModelVersion.objects.filter(training_run=training_run).first()
        if existing is not None:
            return existing
    for _ in range(3):
        try:
            with transaction.atomic():
                return ModelVersion.objects.create(
                    name=name, semver=semver or next_semver(name), base_model=base_model, adapter_path=adapter_path,
                    training_run=training_run, dataset_version=dataset_version, metrics=metrics or {},
                    card=card or {},
                )
        except IntegrityError:
            if semver is not None:
                raise ValidationFailed(f"{name} {semver} already exists", fields={"semver": ["already used"]}) from None
    raise ValidationFailed(f"could not allocate a version for {name}; try again")


def model_version_add_metrics(*, model_version: ModelVersion, metrics: dict[str, Any]) -> ModelVersion:
    with transaction.atomic():
        locked = ModelVersion.objects.select_for_update().get(pk=model_version.pk)
        locked.metrics = {**(locked.metrics or {}), **metrics}
        locked.save(update_fields=["metrics"])
    return locked
