"""Writes for training runs: create, claim, heartbeat, finish, cancel, reap.

A run is a job of the shared runtime (``ftops.common.jobs``). The database, not the broker,
decides who trains: ``training_run_claim`` is one conditional UPDATE, so a task delivered
twice (Redis redelivers unacknowledged tasks) finds the run already leased and returns
without training. While a worker runs a task a daemon thread (``JobHeartbeat``) extends its
lease, so a long model load or validation pass never looks like a dead worker; a worker that
dies stops heartbeating, the reaper sees the lease expire and queues the run again, and the
next worker resumes from the newest checkpoint in the run's artifact folder (only a
checkpoint that names this very run: ``run_identity``). Every end (success, failure, cancel,
a transient error's release) is conditional on still holding the lease.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, is_dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ftops.common.actors import Actor
from ftops.common.errors import Conflict, NotFound, ValidationFailed
from ftops.common.jobs import (
    TRANSIENT_ERRORS,
    JobHeartbeat,
    error_dict,
    job_claim,
    job_finish,
    job_heartbeat,
    job_mark_enqueued,
    job_release,
    jobs_publish_pending,
    jobs_reap,
    worker_identity,
)
from ftops.common.models import AuditAction
from ftops.common.services import audit_record
from ftops.core.ml.lora import TrainingStopped, records_for_service
from ftops.core.records import Record
from ftops.training.backends import BackendResult, TransientBackendError, get_backend
from ftops.training.models import Backend, RunStatus, TrainingRun

log = logging.getLogger(__name__)

LOG_TAIL_LINES = 60
MAX_SERIES_POINTS = 2000
# A run asked to cancel is never claimed again; a beat that finds the flag set stops the run.
NOT_CANCELLED = Q(cancel_requested=False)
# Only these are retried: the provider or the database was briefly unavailable.
RETRYABLE: tuple[type[Exception], ...] = (TransientBackendError, *TRANSIENT_ERRORS)

__all__ = ["worker_identity"]  # re-exported: the CLI and tests name the owner of a run they execute


def lease_seconds() -> int:
    return TrainingRun.lease_seconds()


def run_token(run: TrainingRun) -> str:
    """Tells apart two runs that got the same id (a database reset while ARTIFACTS_DIR stays)."""
    return run.created_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def run_artifact_dir(run: TrainingRun) -> Path:
    # The token keeps a reused id from writing into (and resuming from) an older run's folder,
    # including one whose adapter a registered model version still serves.
    return Path(settings.ARTIFACTS_DIR) / "training" / f"run-{run.pk}-{run_token(run)}"


def run_identity(run: TrainingRun) -> dict[str, str]:
    """What a checkpoint must name to be resumed by this run: id, token and a training fingerprint."""
    version = run.dataset_version
    decides = {"backend": run.backend, "base_model": run.base_model, "service": run.service, "config": run.config,
               "dataset_version": [version.pk, version.number, version.content_hash] if version else None}
    fingerprint = hashlib.sha256(json.dumps(decides, sort_keys=True, default=str).encode()).hexdigest()
    return {"run_id": str(run.pk), "run_token": run_token(run), "fingerprint": fingerprint}


def _config_dict(config: Any) -> dict[str, Any]:
    if is_dataclass(config) and not isinstance(config, type):
        return asdict(config)
    return dict(config)


@transaction.atomic
def training_run_create(
    *,
    backend: str,
    dataset_version: Any,
    config: dict[str, Any] | None = None,
    base_model: str = "",
    service: str = "",
    name: str = "",
    actor: Actor,
    enqueue: bool = True,
) -> TrainingRun:
    """A queued run with its full typed config, audited; its task is sent once the row is committed."""
    if backend not in Backend.values:
        raise ValidationFailed(f"unknown backend {backend!r}", fields={"backend": [f"one of {Backend.values}"]})
    if dataset_version is None:
        raise ValidationFailed("a dataset version is required", fields={"dataset_version": ["give a version number"]})
    if getattr(dataset_version, "status", "ready") != "ready":
        raise ValidationFailed(f"dataset version {dataset_version.number} is {dataset_version.status}, not ready",
                               fields={"dataset_version": ["choose a ready version"]})
    impl = get_backend(backend)
    base = base_model.strip() or impl.default_base_model()
    data = dict(config or {})
    data.pop("base_model", None)
    data["dataset_version"] = str(dataset_version.number)
    data["service"] = service
    try:
        typed = impl.parse_config(data, base_model=base)
    except (TypeError, ValueError) as exc:
        detail = exc.args[0] if exc.args else str(exc)
        fields = {f"config.{k}": [v] for k, v in detail.items()} if isinstance(detail, dict) else {
            "config": [str(detail)]}
        raise ValidationFailed("the training config is invalid; see 'fields'", fields=fields) from exc
    base = str(getattr(typed, "base_model", "") or base)  # a backend may fix it (DPO: its LoRA run's)
    if service and not _service_known(service):
        raise ValidationFailed(f"unknown service {service!r}", fields={"service": ["a catalog service name"]})
    run = TrainingRun.objects.create(
        name=name or f"{backend}-{service or 'all'}-v{dataset_version.number}",
        backend=backend, base_model=base, config=_config_dict(typed), dataset_version=dataset_version,
        service=service, created_by=actor.label[:200], log_tail=f"{timezone.now():%H:%M:%S} queued\n",
        # Not enqueued: the caller runs it now, so the reaper's sender leaves it alone unless
        # it stays unclaimed past FTOPS_TRAINING_REQUEUE_AFTER_S.
        enqueued_at=None if enqueue else timezone.now(),
    )
    audit_record(action=AuditAction.TRAINING_RUN_CREATED, by=actor, object_type="training_run", object_id=run.pk,
                 detail={"backend": run.backend, "base_model": run.base_model, "service": run.service,
                         "dataset_version": dataset_version.number})
    if enqueue:
        training_run_enqueue(run_id=run.pk)
    return run


def _service_known(name: str) -> bool:
    from ftops.catalog.models import Service

    return Service.objects.filter(name=name).exists()


def _publish(run_id: int, countdown: float | None = None) -> None:
    """Hand the run to the broker and note it on the row (the reaper's sender re-sends a lost one)."""
    from ftops.training.tasks import training_run_task

    if countdown:
        training_run_task.apply_async(args=[run_id], countdown=countdown)
    else:
        training_run_task.delay(run_id)
    job_mark_enqueued(TrainingRun, pk=run_id)


def training_run_enqueue(*, run_id: int, countdown: float | None = None) -> None:
    transaction.on_commit(lambda: _publish(run_id, countdown))


def training_run_claim(*, run_id: int, owner: str, now: Any = None) -> TrainingRun | None:
    """Lease the run for ``owner``; None when another worker holds it, it is finished or asked to cancel."""
    claimed = job_claim(TrainingRun, pk=run_id, owner=owner, now=now, where=NOT_CANCELLED, fields={"error": ""})
    if claimed is None:
        return None
    return TrainingRun.objects.select_related("dataset_version").get(pk=run_id)


class RunContext:
    """What a backend sees of its run: progress, log, heartbeat and the cancel flag.

    Writes are throttled (``flush_every_s``) except when forced; every write is a heartbeat
    (``job_heartbeat``) conditional on still holding the lease and on no cancel request, so a
    worker that lost its run to the reaper, or was asked to stop, stops at once.
    ``db_lock`` is shared with the run's ``JobHeartbeat``: one process never writes the row
    from two threads at once (on SQLite a second writer would wait on, or fail against, the first).
    """

    def __init__(self, run: TrainingRun, owner: str, *, flush_every_s: float = 2.0,
                 echo: Callable[[str], None] | None = None) -> None:
        self.run_id = run.pk
        self.echo = echo
        self.owner = owner
        self.artifact_dir = run_artifact_dir(run)
        self.identity = run_identity(run)
        self.db_lock = threading.Lock()
        self.lease_lost = threading.Event()
        self.flush_every_s = flush_every_s
        self.loss_series: list[list[float]] = list(run.loss_series or [])
        self.val_series: list[list[float]] = list(run.val_loss_series or [])
        self.lines: list[str] = (run.log_tail or "").splitlines()[-LOG_TAIL_LINES:]
        self.fields: dict[str, Any] = {}
        self._last_flush = 0.0

    def log(self, line: str) -> None:
        log.info("training run %s: %s", self.run_id, line)
        if self.echo is not None:
            self.echo(line)
        self.lines.append(f"{timezone.now():%H:%M:%S} {line}")
        self.lines = self.lines[-LOG_TAIL_LINES:]

    def progress(self, *, step: int, total_steps: int, loss: float | None = None, val_loss: float | None = None,
                 eta_s: float | None = None, force: bool = False) -> None:
        if loss is not None:
            self.loss_series = _append_point(self.loss_series, step, loss)
        if val_loss is not None:
            self.val_series = _append_point(self.val_series, step, val_loss)
        pct = min(100.0, 100.0 * step / total_steps) if total_steps else 0.0
        self.fields.update(step=step, total_steps=total_steps, progress=round(pct, 2), eta_seconds=eta_s)
        self._flush(force=force)

    def replace_series(self, *, losses: Sequence[Sequence[float]], val_losses: Sequence[Sequence[float]]) -> None:
        """Take the trainer's complete loss curves (written with the run's end)."""
        self.loss_series = _thinned([[int(p[0]), round(float(p[1]), 6)] for p in losses])
        self.val_series = _thinned([[int(p[0]), round(float(p[1]), 6)] for p in val_losses])

    def set_external_ids(self, **ids: str) -> None:
        with self.db_lock, transaction.atomic():
            run = TrainingRun.objects.select_for_update().get(pk=self.run_id)
            TrainingRun.objects.filter(pk=self.run_id).update(external_ids={**(run.external_ids or {}), **ids})

    def check(self) -> None:
        """Heartbeat; raise ``TrainingStopped`` when cancelled or when the lease was lost."""
        # The heartbeat thread saw the lease go: find out why now rather than at the next flush.
        self._flush(force=self.lease_lost.is_set())

    def _flush(self, *, force: bool) -> None:
        now_m = time.monotonic()
        if not force and now_m - self._last_flush < self.flush_every_s:
            return
        self._last_flush = now_m
        with self.db_lock:
            held = job_heartbeat(TrainingRun, pk=self.run_id, owner=self.owner, where=NOT_CANCELLED, fields={
                "loss_series": self.loss_series, "val_loss_series": self.val_series,
                "log_tail": "\n".join(self.lines) + "\n", **self.fields,
            })
            if held:
                return
            state = TrainingRun.objects.filter(pk=self.run_id).values("cancel_requested", "log_tail").first()
        if state and state["cancel_requested"]:
            # Keep the lines others wrote meanwhile (who asked to cancel) in the final tail.
            known = set(self.lines)
            self.lines += [line for line in (state["log_tail"] or "").splitlines() if line not in known]
            raise TrainingStopped("cancelled")
        raise TrainingStopped("lease lost")

    def snapshot(self) -> dict[str, Any]:
        return {"loss_series": self.loss_series, "val_loss_series": self.val_series,
                "log_tail": "\n".join(self.lines) + "\n", **self.fields}


def _append_point(series: list[list[float]], step: int, value: float) -> list[list[float]]:
    series = [p for p in series if p[0] < step]  # a resumed run replays steps after its checkpoint
    series.append([step, round(float(value), 6)])
    return _thinned(series)


def _thinned(series: list[list[float]]) -> list[list[float]]:
    while len(series) > MAX_SERIES_POINTS:
        series = series[::2]
    return series


def _training_records(run: TrainingRun) -> tuple[list[Record], list[Record]]:
    from ftops.datasets.selectors import dataset_records

    version = run.dataset_version
    if version is None:
        raise RuntimeError("the run has no dataset version")
    # Training reads train and validation only; the holdout stays unseen (never allow_holdout).
    train = dataset_records(version=version, split="train")
    val = dataset_records(version=version, split="validation")
    return records_for_service(train, run.service), records_for_service(val, run.service)


def _rules(records: list[Record]) -> list[str]:
    from ftops.catalog.selectors import service_vocabularies
    from ftops.core.vocabulary import vocabulary_rules

    return vocabulary_rules(service_vocabularies(names={r.service for r in records}))


def training_run_execute(*, run_id: int, owner: str | None = None,
                         echo: Callable[[str], None] | None = None) -> TrainingRun | None:
    """Claim the run and train it; None when this delivery is a duplicate (``echo`` mirrors the log)."""
    owner = owner or worker_identity()
    run = training_run_claim(run_id=run_id, owner=owner)
    if run is None:
        log.info("training run %s not claimed by %s (held elsewhere or finished)", run_id, owner)
        return None
    ctx = RunContext(run, owner, echo=echo)
    ctx.log(f"attempt {run.attempts} claimed by {owner}")
    ctx.artifact_dir.mkdir(parents=True, exist_ok=True)
    try:
        # The heartbeat stops before the outcome is written below: those writes end the lease.
        with JobHeartbeat(TrainingRun, pk=run_id, owner=owner, lock=ctx.db_lock, lost=ctx.lease_lost):
            ctx.progress(step=run.step, total_steps=run.total_steps, force=True)
            train, val = _training_records(run)
            if not train:
                raise RuntimeError("the dataset version has no training records" +
                                   (f" for service {run.service!r}" if run.service else ""))
            result = get_backend(run.backend).run(run=run, ctx=ctx, train=train, val=val, rules=_rules(train))
    except TrainingStopped as stop:
        reason = stop.args[0] if stop.args else "stopped"
        if reason == "cancelled":
            ctx.log("cancelled")
            _finish(run_id, owner, status=RunStatus.CANCELLED, ctx=ctx)
        else:
            log.warning("training run %s: %s; another worker owns it now", run_id, reason)
        return TrainingRun.objects.get(pk=run_id)
    except RETRYABLE as exc:
        ctx.log(f"transient error, will retry: {exc}")
        _requeue_after_error(run_id, owner, ctx, str(exc) or type(exc).__name__)
        return TrainingRun.objects.get(pk=run_id)
    except Exception as exc:
        log.exception("training run %s failed", run_id)
        ctx.log(f"failed: {exc}")
        _finish(run_id, owner, status=RunStatus.FAILED, ctx=ctx, error=str(exc) or type(exc).__name__)
        return TrainingRun.objects.get(pk=run_id)
    ctx.log("succeeded")
    return training_run_succeed(run_id=run_id, owner=owner, result=result, ctx=ctx)


def _finish(run_id: int, owner: str, *, status: str, ctx: RunContext, error: str = "",
            extra: dict[str, Any] | None = None) -> bool:
    """End the run with the context's last progress and log; False when ``owner`` lost the lease."""
    values = {**ctx.snapshot(), **(extra or {}), "eta_seconds": None}
    return job_finish(TrainingRun, pk=run_id, owner=owner, status=status,
                      error=error_dict(status, error) if error else None, fields=values)


def _requeue_after_error(run_id: int, owner: str, ctx: RunContext, error: str) -> None:
    """Back to the queue after a transient error (failed after ``max_attempts``), retried later."""
    with transaction.atomic():
        outcome = job_release(TrainingRun, pk=run_id, owner=owner, error=error_dict("transient", error),
                              fields={**ctx.snapshot(), "eta_seconds": None})
        if outcome == RunStatus.QUEUED:
            attempts = TrainingRun.objects.filter(pk=run_id).values_list("attempts", flat=True).first() or 1
            training_run_enqueue(run_id=run_id, countdown=30 * attempts)


@transaction.atomic
def training_run_succeed(*, run_id: int, owner: str, result: BackendResult, ctx: RunContext) -> TrainingRun:
    """Mark the run succeeded with its artifacts; the registry registers its model version.

    The registry sits above training, so it is asked by task name once this commits: a
    rolled-back success registers nothing, and registering twice returns the same version.
    """
    from celery import current_app

    run = TrainingRun.objects.select_for_update(of=("self",)).select_related("dataset_version").get(pk=run_id)
    if run.status != RunStatus.RUNNING or run.lease_owner != owner:
        return run  # lost the lease at the last moment: the new owner finishes it
    extra = {"artifact_path": result.artifact_path, "artifact_bytes": result.artifact_bytes,
             "artifact": result.artifact, "metrics": result.metrics, "progress": 100.0}
    snapshot = ctx.snapshot()
    snapshot.update(progress=100.0)
    _finish(run_id, owner, status=RunStatus.SUCCEEDED, ctx=ctx, extra={**extra, **{
        k: v for k, v in snapshot.items() if k not in extra}})
    run.refresh_from_db()
    transaction.on_commit(lambda: current_app.signature(
        "registry.tasks.model_version_register_for_run", kwargs={"training_run_id": run_id}).delay())
    return run


@transaction.atomic
def training_run_cancel(*, run_id: int, actor: Actor) -> TrainingRun:
    """Queued runs stop at once; running ones at their next step (the loop checks the flag). Audited."""
    run = TrainingRun.objects.select_for_update().filter(pk=run_id).first()
    if run is None:
        raise NotFound(f"training run {run_id} does not exist")
    if run.is_final:
        raise Conflict(f"training run {run_id} is already {run.status}")
    now = timezone.now()
    line = f"{now:%H:%M:%S} cancel requested by {actor.label or 'unknown'}\n"
    lease_dead = run.lease_expires_at is None or run.lease_expires_at < now
    if run.status == RunStatus.QUEUED or lease_dead:
        TrainingRun.objects.filter(pk=run_id).update(status=RunStatus.CANCELLED, cancel_requested=True,
                                                     finished_at=now, lease_owner="", lease_expires_at=None,
                                                     log_tail=(run.log_tail or "") + line, updated_at=now)
    else:
        TrainingRun.objects.filter(pk=run_id).update(cancel_requested=True, log_tail=(run.log_tail or "") + line,
                                                     updated_at=now)
    run.refresh_from_db()
    audit_record(action=AuditAction.TRAINING_RUN_CANCELLED, by=actor, object_type="training_run", object_id=run.pk,
                 detail={"status": run.status})
    return run


def training_runs_reap(*, now: Any = None) -> dict[str, list[int]]:
    """Re-queue runs whose worker stopped heartbeating (``ftops.common.jobs.jobs_reap``); fail
    those out of attempts; cancel dead runs that were asked to cancel.

    Then the outbox sender publishes queued runs never handed to the broker, or handed over
    ``FTOPS_TRAINING_REQUEUE_AFTER_S`` ago and still unclaimed (a lost message): the claim
    makes an extra delivery harmless. The log line goes in before the publish, so the worker
    that resumes the run keeps it in the tail it writes.
    """
    now = now or timezone.now()
    cancelled = list(TrainingRun.objects.filter(status=RunStatus.RUNNING, cancel_requested=True,
                                                lease_expires_at__lt=now).values_list("pk", flat=True))
    if cancelled:
        # Their worker died before it saw the request: nobody may resume them.
        TrainingRun.objects.filter(pk__in=cancelled, status=RunStatus.RUNNING, lease_expires_at__lt=now).update(
            status=RunStatus.CANCELLED, finished_at=now, lease_owner="", lease_expires_at=None, updated_at=now)
    reaped = jobs_reap(TrainingRun, now=now)
    for run_id in reaped.requeued:
        with transaction.atomic():
            attempts = TrainingRun.objects.filter(pk=run_id).values_list("attempts", flat=True).first()
            _append_log(run_id, f"lease expired after attempt {attempts}; re-queued (resumes from checkpoint)")
    for run_id in reaped.failed:
        with transaction.atomic():
            _append_log(run_id, "the worker stopped responding too often; giving up")
    sent = jobs_publish_pending(TrainingRun, publish=_publish_now, now=now,
                                resend_after_s=float(getattr(settings, "FTOPS_TRAINING_REQUEUE_AFTER_S", 900)))
    return {"requeued": reaped.requeued, "failed": reaped.failed, "cancelled": cancelled, "resent": sent.published}


def _publish_now(run_id: int) -> None:
    from ftops.training.tasks import training_run_task

    training_run_task.delay(run_id)


def _append_log(run_id: int, line: str) -> None:
    run = TrainingRun.objects.select_for_update().get(pk=run_id)
    lines = ((run.log_tail or "") + f"{timezone.now():%H:%M:%S} {line}\n").splitlines()[-LOG_TAIL_LINES:]
    TrainingRun.objects.filter(pk=run_id).update(log_tail="\n".join(lines) + "\n")
