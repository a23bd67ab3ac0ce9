"""Curation runs on the queue: a row per pass, a job of the shared runtime (``ftops.common.jobs``).

Claimed under a lease, heartbeated while it collects, finished only by its owner; the reaper
re-queues a run whose worker died. Collection is idempotent (one production example per
interaction), so the next worker simply runs the pass again. Database trouble releases the
run for the task's retry; anything else fails it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.db import transaction

from ftops.common.errors import ValidationFailed
from ftops.common.jobs import (
    TRANSIENT_ERRORS,
    JobHeartbeat,
    error_dict,
    job_claim,
    job_fail,
    job_finish,
    job_heartbeat,
    job_mark_enqueued,
    job_release,
    jobs_reap,
    worker_identity,
)
from ftops.datasets.models import CurationRun
from ftops.datasets.services.collection import examples_collect_production

# Retraining triggers live in the loop (a higher floor): a run that asks for them hands over by
# task name once its own work committed, and the loop writes its report back with
# ``curation_run_note``. Until then the run's result says the triggers are queued.
TRIGGERS_TASK = "ftops.loop.tasks.triggers_evaluate_task"

log = logging.getLogger(__name__)


def curation_run_start(*, kind: str, params: dict[str, Any] | None = None) -> CurationRun:
    """A pending run; the curation queue executes it once the transaction commits."""
    if kind not in CurationRun.Kind.values:
        raise ValidationFailed(f"unknown curation run kind {kind!r}",
                               fields={"kind": [f"one of {list(CurationRun.Kind.values)}"]})
    with transaction.atomic():
        run = CurationRun.objects.create(kind=kind, params=params or {})
        pk = run.pk
        transaction.on_commit(lambda: _publish(pk))
    return run


def _publish(run_id: int) -> None:
    from ftops.datasets.tasks import curation_run_task

    curation_run_task.delay(run_id)
    job_mark_enqueued(CurationRun, pk=run_id)


def curation_run_execute(*, run_id: int, owner: str | None = None) -> CurationRun:
    """Claim the run under a lease and do the pass; a redelivered task (or a live owner) does nothing."""
    owner = owner or worker_identity()
    run = job_claim(CurationRun, pk=run_id, owner=owner, fields={"progress": 1, "error": ""})
    if run is None:
        return CurationRun.objects.get(pk=run_id)
    lock = threading.Lock()  # progress writes and the heartbeat thread never write the row at once

    def progress(done: int, total: int) -> None:
        percent = max(1, min(99, int(100 * done / total))) if total else 50
        with lock:
            job_heartbeat(CurationRun, pk=run_id, owner=owner, fields={"progress": percent})

    result: dict[str, Any] = {}
    wants_triggers = run.kind in (CurationRun.Kind.TRIGGERS, CurationRun.Kind.SCHEDULED)
    try:
        with JobHeartbeat(CurationRun, pk=run_id, owner=owner, lock=lock):
            if run.kind in (CurationRun.Kind.COLLECT, CurationRun.Kind.SCHEDULED):
                result["collect"] = examples_collect_production(on_progress=progress).as_dict()
    except TRANSIENT_ERRORS as exc:
        job_release(CurationRun, pk=run_id, owner=owner, error=error_dict("transient", f"{type(exc).__name__}: {exc}"))
        raise
    except Exception as exc:
        job_fail(CurationRun, pk=run_id, owner=owner, error=error_dict("failed", f"{type(exc).__name__}: {exc}"))
        raise
    if wants_triggers:
        result["triggers"] = {"queued": TRIGGERS_TASK}
    with transaction.atomic():
        if not job_finish(CurationRun, pk=run_id, owner=owner, fields={"progress": 100, "result": result}):
            log.warning("curation run %s: the lease went to another worker; it reports the pass", run_id)
        elif wants_triggers:
            from celery import current_app

            transaction.on_commit(
                lambda: current_app.signature(TRIGGERS_TASK, kwargs={"curation_run_id": run_id}).delay())
    return CurationRun.objects.get(pk=run_id)


def curation_runs_reap() -> dict[str, Any]:
    """Re-queue runs whose worker died (or fail them after ``max_attempts``) and publish pending
    runs the broker never got; on beat, and in the embedded mode from the scheduler."""
    def publish(pk: int) -> None:
        from ftops.datasets.tasks import curation_run_task

        curation_run_task.delay(pk)

    return jobs_reap(CurationRun, publish=publish, resend_after_s=600).as_dict()


def curation_run_note(*, run_id: int, key: str, value: Any) -> None:
    """Add ``key`` to a finished run's result (a follow-up step run elsewhere reports back)."""
    with transaction.atomic():
        run = CurationRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None:
            return  # the run was deleted meanwhile: nothing to report on
        run.result = {**run.result, key: value}
        run.save(update_fields=["result", "updated_at"])
