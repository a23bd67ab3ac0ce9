"""Curation runs on the queue: a row per pass, claimed by a conditional UPDATE, progress on the row."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from ftops.common.errors import ValidationFailed
from ftops.datasets.models import CurationRun, RunStatus
from ftops.datasets.services.collection import examples_collect_production

# Retraining triggers live in the loop (a higher floor): a run that asks for them hands over by
# task name once its own work committed, and the loop writes its report back with
# ``curation_run_note``. Until then the run's result says the triggers are queued.
TRIGGERS_TASK = "ftops.loop.tasks.triggers_evaluate_task"


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
        wants_triggers = run.kind in (CurationRun.Kind.TRIGGERS, CurationRun.Kind.SCHEDULED)
        if wants_triggers:
            result["triggers"] = {"queued": TRIGGERS_TASK}
    except Exception as exc:
        CurationRun.objects.filter(pk=run_id).update(status=RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}",
                                                     finished_at=timezone.now())
        raise
    CurationRun.objects.filter(pk=run_id).update(status=RunStatus.READY, progress=100, result=result,
                                                 finished_at=timezone.now())
    if wants_triggers:
        from celery import current_app

        transaction.on_commit(lambda: current_app.signature(TRIGGERS_TASK, kwargs={"curation_run_id": run_id}).delay())
    run.refresh_from_db()
    return run


def curation_run_note(*, run_id: int, key: str, value: Any) -> None:
    """Add ``key`` to a finished run's result (a follow-up step run elsewhere reports back)."""
    with transaction.atomic():
        run = CurationRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None:
            return  # the run was deleted meanwhile: nothing to report on
        run.result = {**run.result, key: value}
        run.save(update_fields=["result", "updated_at"])
