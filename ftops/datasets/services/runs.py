"""Curation runs on the queue: a row per pass, claimed by a conditional UPDATE, progress on the row."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from ftops.common.errors import ValidationFailed
from ftops.datasets.models import CurationRun, RunStatus
from ftops.datasets.services.collection import examples_collect_production
from ftops.datasets.services.triggers import triggers_evaluate


def curation_run_start(*, kind: str, params: dict[str, Any] | None = None) -> CurationRun:
    """A pending run; the curation queue executes it once the transaction commits."""
    if kind not in CurationRun.Kind.values:
        raise ValidationFailed(f"unknown curation run kind {kind!r}",
                               fields={"kind": [f"one of {list(CurationRun.Kind.values)}"]})
    with transaction.atomic():
        run = CurationRun.objects.create(kind=kind, params=params or {})
        from ftops.datasets.tasks import curation_run_task

        pk = run.pk
        transaction.on_commit(lambda: curation_run_task.delay(pk))
    return run


def curation_run_execute(*, run_id: int) -> CurationRun:
    claimed = CurationRun.objects.filter(pk=run_id, status=RunStatus.PENDING).update(
        status=RunStatus.RUNNING, progress=1, updated_at=timezone.now())
    run = CurationRun.objects.get(pk=run_id)
    if not claimed:
        return run  # a redelivered task: the first delivery owns the run

    def progress(done: int, total: int) -> None:
        percent = max(1, min(99, int(100 * done / total))) if total else 50
        CurationRun.objects.filter(pk=run_id).update(progress=percent, updated_at=timezone.now())

    result: dict[str, Any] = {}
    try:
        if run.kind in (CurationRun.Kind.COLLECT, CurationRun.Kind.SCHEDULED):
            result["collect"] = examples_collect_production(on_progress=progress).as_dict()
        if run.kind in (CurationRun.Kind.TRIGGERS, CurationRun.Kind.SCHEDULED):
            result["triggers"] = triggers_evaluate().as_dict()
    except Exception as exc:
        CurationRun.objects.filter(pk=run_id).update(status=RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}",
                                                     finished_at=timezone.now())
        raise
    CurationRun.objects.filter(pk=run_id).update(status=RunStatus.READY, progress=100, result=result,
                                                 finished_at=timezone.now())
    run.refresh_from_db()
    return run
