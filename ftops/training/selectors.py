"""Reads for training runs."""

from __future__ import annotations

from django.db.models import QuerySet

from ftops.common.errors import NotFound
from ftops.training.models import TrainingRun


def training_runs_list(*, status: str | None = None, backend: str | None = None) -> QuerySet[TrainingRun]:
    qs = TrainingRun.objects.select_related("dataset_version")
    if status:
        qs = qs.filter(status=status)
    if backend:
        qs = qs.filter(backend=backend)
    return qs.order_by("-created_at", "-id")


def training_run_get(*, run_id: int) -> TrainingRun:
    run = TrainingRun.objects.select_related("dataset_version").filter(pk=run_id).first()
    if run is None:
        raise NotFound(f"training run {run_id} does not exist")
    return run
