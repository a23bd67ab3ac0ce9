"""One job runtime for every long step: a row with a status, claimed under a lease.

Ingest batches, curation runs, dataset builds, training runs and evaluation runs are all
"a row that a worker must finish exactly once, even when the broker delivers its task twice
or the worker dies half-way". The broker cannot promise that (Redis redelivers an
unacknowledged task only after its visibility timeout, hours later, and may deliver twice),
so the database decides:

* ``job_claim`` is one conditional UPDATE: a pending row, or a running row whose lease has
  expired, becomes running under this worker's lease. Two deliveries race on the UPDATE and
  exactly one wins; running a task twice is harmless.
* ``JobHeartbeat`` (a daemon thread) and ``job_heartbeat`` extend the lease while the owner
  works; each beat is conditional on still owning the row, so a worker that lost its job
  never takes it back.
* ``job_finish`` / ``job_fail`` end the job, again only for the owner. Do the job's own
  writes and ``job_finish`` in one transaction and roll back when it returns False: then a
  job's effects are committed exactly once, by whoever holds the lease at the end.
* ``job_release`` gives a job back after a transient error (or fails it after
  ``max_attempts``); the task's retry claims it again.
* ``jobs_reap`` re-queues running jobs whose lease expired (the worker died or hangs) and
  fails those that used up ``max_attempts``; ``jobs_publish_pending`` is the outbox sender:
  pending rows that were never published, or published long ago and never claimed (a lost
  message), are published again. Run both on beat, and in the embedded mode before new jobs.

Concrete jobs subclass ``Job`` in their own app (``class IngestBatch(Job)``) and add what
they carry (payload, result). ``Job.lease_seconds()`` picks the lease per model. Helpers
take the model class, so one runtime serves every app without knowing about any of them.
A model whose users already know other words keeps them: ``pending_status`` ("queued" for
training and evaluation runs) and ``succeeded_status`` ("ready" for dataset versions) name
its own values, ``progress_scale`` says whether its ``progress`` is a fraction or a percent,
and ``error_value`` turns the ``{code, message}`` error into what its ``error`` column holds.

``jobs_scheduler_start`` runs the reapers from a daemon thread of the served process in the
embedded default (no broker, so no beat); on Celery, beat sends the same reapers.

Idempotent publishing is the caller's rule: a task receives only the row id and must call
``job_claim`` first; ``None`` means nothing to do (finished, or another live owner).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, TypeVar

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection, connections, models, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

log = logging.getLogger(__name__)

# Beats per lease: a lease survives a few missed beats (a slow or briefly unreachable database).
HEARTBEATS_PER_LEASE = 5
# Errors worth a retry: the database went away or was busy, not anything about the job's data.
# A job that hits one is released (``job_release``) and its task retries; anything else fails it.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (OperationalError, InterfaceError)


class JobStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


class Job(models.Model):
    """Abstract base of every long-running step. Concrete rows live in their own app."""

    status = models.CharField(max_length=12, choices=JobStatus.choices, default=JobStatus.PENDING, db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Claims so far (each worker start counts)")
    max_attempts = models.PositiveSmallIntegerField(default=5)
    lease_owner = models.CharField(max_length=200, blank=True, help_text="host:pid:nonce of the worker")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(
        null=True, blank=True, help_text="When its task was last published; empty: never (the outbox sender's work)"
    )
    progress = models.FloatField(null=True, blank=True, help_text="0..1 where the job knows its size")
    progress_counts = models.JSONField(default=dict, blank=True, help_text="e.g. {done, total}")
    error = models.JSONField(default=dict, blank=True, help_text="{code, message, fields?} of the last failure")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    # The setting that holds this model's lease in seconds; FTOPS_JOB_LEASE_S when unset.
    lease_setting: ClassVar[str] = "FTOPS_JOB_LEASE_S"
    # This model's words for "waiting" and "done" (the other statuses are shared).
    pending_status: ClassVar[str] = JobStatus.PENDING
    succeeded_status: ClassVar[str] = JobStatus.SUCCEEDED
    # What ``progress`` reads when done: 1.0 (a fraction) or 100 (a percent).
    progress_scale: ClassVar[float] = 1.0

    class Meta:
        abstract = True
        indexes = [models.Index(fields=["status", "lease_expires_at"], name="%(class)s_lease_ix")]

    @classmethod
    def lease_seconds(cls) -> int:
        return int(getattr(settings, cls.lease_setting, getattr(settings, "FTOPS_JOB_LEASE_S", 300)))

    @classmethod
    def final_statuses(cls) -> frozenset[str]:
        return frozenset({cls.succeeded_status, JobStatus.FAILED, JobStatus.CANCELLED})

    @classmethod
    def error_value(cls, error: dict[str, Any] | None) -> Any:
        """What ``error`` stores: the dict itself; a text column overrides this with the message."""
        return error or {}

    @property
    def is_final(self) -> bool:
        return self.status in self.final_statuses()


def text_error(error: dict[str, Any] | None) -> str:
    """``error_value`` for models whose ``error`` is a text column shown as it is."""
    return str((error or {}).get("message", ""))[:4000]


J = TypeVar("J", bound=Job)


def worker_identity() -> str:
    """Unique per process and call: a restarted worker with the same pid is another owner."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def error_dict(code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    """The shape of ``Job.error``: the API's error envelope body."""
    out: dict[str, Any] = {"code": code, "message": message[:4000]}
    if fields:
        out["fields"] = fields
    return out


# --- claim, heartbeat, finish ------------------------------------------------------------------


def job_claim(
    model: type[J], *, pk: int, owner: str, now: datetime | None = None, where: Q | None = None,
    fields: dict[str, Any] | None = None,
) -> J | None:
    """Lease the job for ``owner``: a pending one, or a running one whose lease expired.

    One conditional UPDATE, so of two deliveries exactly one wins. None when another owner's
    lease is live, the job is final, or it used up ``max_attempts`` (the reaper fails it).
    ``where`` narrows what may be claimed (a run asked to cancel); ``fields`` are set with it.
    """
    now = now or timezone.now()
    claimable = Q(status=model.pending_status) | Q(status=JobStatus.RUNNING, lease_expires_at__lt=now)
    expires = now + timedelta(seconds=model.lease_seconds())
    qs = model._default_manager.filter(pk=pk, attempts__lt=F("max_attempts")).filter(claimable)
    if where is not None:
        qs = qs.filter(where)
    updated = qs.update(
        status=JobStatus.RUNNING, lease_owner=owner, lease_expires_at=expires, heartbeat_at=now,
        attempts=F("attempts") + 1, started_at=Coalesce("started_at", now), updated_at=now, **(fields or {}),
    )
    if updated != 1:
        return None
    return model._default_manager.get(pk=pk)


def job_lease_remaining(model: type[Job], *, pk: int, now: datetime | None = None) -> float | None:
    """Seconds until a running job's lease expires (0 when already expired); None when not running.

    A task that lost the claim to a live lease uses it to come back when the lease ends
    rather than be acknowledged and dropped: the holder may be dead (a SIGKILLed worker
    whose message the broker redelivered at once).
    """
    now = now or timezone.now()
    row = model._default_manager.filter(pk=pk, status=JobStatus.RUNNING).values_list("lease_expires_at", flat=True)
    expires = row.first()
    if expires is None:
        return None
    return max(0.0, (expires - now).total_seconds())


def job_heartbeat(
    model: type[Job], *, pk: int, owner: str, progress: float | None = None,
    progress_counts: dict[str, Any] | None = None, now: datetime | None = None,
    fields: dict[str, Any] | None = None, where: Q | None = None,
) -> bool:
    """Extend the lease (and record progress); False when ``owner`` no longer holds the job.

    ``fields`` are written with the beat (a log tail, a loss curve); ``where`` adds a
    condition (not asked to cancel), so a False beat also tells the owner to stop.
    """
    now = now or timezone.now()
    values: dict[str, Any] = {
        "lease_expires_at": now + timedelta(seconds=model.lease_seconds()), "heartbeat_at": now, "updated_at": now,
    }
    if progress is not None:
        values["progress"] = progress
    if progress_counts is not None:
        values["progress_counts"] = progress_counts
    values.update(fields or {})
    qs = model._default_manager.filter(pk=pk, lease_owner=owner, status=JobStatus.RUNNING)
    if where is not None:
        qs = qs.filter(where)
    return qs.update(**values) == 1


def job_finish(
    model: type[Job], *, pk: int, owner: str, status: str | None = None,
    error: dict[str, Any] | None = None, fields: dict[str, Any] | None = None, now: datetime | None = None,
) -> bool:
    """End the job (succeeded, failed or cancelled) with ``fields``, only while ``owner`` holds it.

    False means the lease went to someone else: roll back whatever this worker wrote in the
    same transaction, the new owner does the job.
    """
    status = status or model.succeeded_status
    if status not in model.final_statuses():
        raise ValueError(f"{status!r} is not a final status of {model.__name__}")
    now = now or timezone.now()
    values: dict[str, Any] = {
        "status": status, "finished_at": now, "lease_owner": "", "lease_expires_at": None, "updated_at": now,
        "error": model.error_value(error), **(fields or {}),
    }
    if status == model.succeeded_status:
        values.setdefault("progress", model.progress_scale)
    updated = model._default_manager.filter(pk=pk, lease_owner=owner, status=JobStatus.RUNNING).update(**values)
    return updated == 1


def job_fail(
    model: type[Job], *, pk: int, owner: str, error: dict[str, Any], fields: dict[str, Any] | None = None,
) -> bool:
    """Fail for good (a domain error that a retry cannot fix)."""
    return job_finish(model, pk=pk, owner=owner, status=JobStatus.FAILED, error=error, fields=fields)


def job_release(
    model: type[Job], *, pk: int, owner: str, error: dict[str, Any], fields: dict[str, Any] | None = None,
) -> str | None:
    """Give the job back after a transient error: pending again, or failed after ``max_attempts``.

    Returns the new status, or None when ``owner`` no longer held it. The caller's retry
    (Celery ``autoretry_for``) claims it again.
    """
    now = timezone.now()
    with transaction.atomic():
        row = (
            model._default_manager.select_for_update()
            .filter(pk=pk, lease_owner=owner, status=JobStatus.RUNNING)
            .values("attempts", "max_attempts")
            .first()
        )
        if row is None:
            return None
        if row["attempts"] >= row["max_attempts"]:
            message = f"gave up after {row['attempts']} attempts: {error.get('message', '')}"
            job_fail(model, pk=pk, owner=owner, error={**error, "message": message[:4000]}, fields=fields)
            return JobStatus.FAILED
        model._default_manager.filter(pk=pk).update(
            status=model.pending_status, lease_owner="", lease_expires_at=None, error=model.error_value(error),
            updated_at=now, **(fields or {}),
        )
    log.info("%s %s released after a transient error: %s", model.__name__, pk, error.get("message", ""))
    return model.pending_status


class JobHeartbeat:
    """Extends a claimed job's lease from a daemon thread for as long as the work runs.

    Work that writes its own progress at step boundaries can still outlast the lease in one
    step (a model load, a large insert); without a beat the reaper, or a redelivery, would
    start a second worker on a live job. The thread uses its own database connection, and
    closes it when it stops. ``lost`` is set when a beat finds the job gone to another owner.
    """

    def __init__(
        self, model: type[Job], *, pk: int, owner: str, interval_s: float | None = None,
        lock: threading.Lock | None = None, lost: threading.Event | None = None,
    ) -> None:
        self.model = model
        self.pk = pk
        self.owner = owner
        self.interval_s = interval_s if interval_s is not None else model.lease_seconds() / HEARTBEATS_PER_LEASE
        self.lock = lock or threading.Lock()
        self.lost = lost or threading.Event()
        self.beats = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> JobHeartbeat:
        if connection.in_atomic_block:
            # The claim is not committed yet, so another connection cannot see it (a test's
            # transaction, a caller's atomic block): a beat from the thread would find nothing.
            log.debug("%s %s: no heartbeat thread inside a transaction", self.model.__name__, self.pk)
            return self
        name = f"heartbeat-{self.model._meta.label_lower}-{self.pk}"
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            # A beat stuck on the database must not hang the worker: the thread is a daemon,
            # and a late beat changes nothing once the job has left this owner.
            self._thread.join(timeout=self.interval_s + 10)

    def __enter__(self) -> JobHeartbeat:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def beat(self) -> bool:
        with self.lock:
            held = job_heartbeat(self.model, pk=self.pk, owner=self.owner)
        self.beats += 1
        return held

    def _loop(self) -> None:
        try:
            while not self._stop.wait(self.interval_s):
                try:
                    held = self.beat()
                except DatabaseError:
                    # Transient (a restart, a locked SQLite file): the lease outlasts a few
                    # missed beats. Drop the connection so the next beat opens a fresh one.
                    log.warning("%s %s: heartbeat failed; retrying", self.model.__name__, self.pk, exc_info=True)
                    connections.close_all()
                    continue
                if not held:
                    log.warning("%s %s: %s no longer holds the lease; heartbeat stops",
                                self.model.__name__, self.pk, self.owner)
                    self.lost.set()
                    return
        finally:
            connections.close_all()  # this thread's connections only (they are per thread)


# --- reaper and outbox sender ----------------------------------------------------------------


@dataclass
class ReapResult:
    requeued: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    published: list[int] = field(default_factory=list)
    publish_error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"requeued": self.requeued, "failed": self.failed, "published": self.published,
                "publish_error": self.publish_error}


# ``publish(pk)`` sends the job's task. It returns False when it ran the job inline (the embedded
# default) and the row is already as it should be: a job that gave its lease back to wait is
# then left unmarked, so the next pass of the sender sends it again.
Publish = Callable[[int], bool | None]


def jobs_reap(
    model: type[Job], *, publish: Publish | None = None, now: datetime | None = None,
    resend_after_s: float | None = None, limit: int = 500,
) -> ReapResult:
    """Re-queue running jobs whose lease expired; fail those out of attempts; then publish.

    A re-queued job goes back to pending with ``enqueued_at`` cleared, so the outbox sender
    below publishes it now (when ``publish`` is given) or on its next pass. Each transition
    is a conditional UPDATE on the expired lease: a worker that beats at the last moment, or
    a second reaper, wins or loses cleanly.
    """
    now = now or timezone.now()
    result = ReapResult()
    expired = list(
        model._default_manager.filter(status=JobStatus.RUNNING, lease_expires_at__lt=now)
        .order_by("lease_expires_at")
        .values_list("pk", "attempts", "max_attempts", "lease_owner")[:limit]
    )
    for pk, attempts, max_attempts, owner in expired:
        base = model._default_manager.filter(pk=pk, status=JobStatus.RUNNING, lease_expires_at__lt=now)
        if attempts >= max_attempts:
            error = error_dict("lease_expired", f"the worker stopped responding on attempt {attempts} of "
                                                f"{max_attempts} (last owner {owner}); giving up")
            if base.update(status=JobStatus.FAILED, finished_at=now, lease_owner="", lease_expires_at=None,
                           error=model.error_value(error), updated_at=now):
                result.failed.append(pk)
            continue
        error = error_dict("lease_expired", f"attempt {attempts} by {owner} stopped responding; re-queued")
        if base.update(status=model.pending_status, lease_owner="", lease_expires_at=None, enqueued_at=None,
                       error=model.error_value(error), updated_at=now):
            result.requeued.append(pk)
    if result.requeued or result.failed:
        log.warning("%s reaper: re-queued %s, failed %s", model.__name__, result.requeued, result.failed)
    if publish is not None:
        sent = jobs_publish_pending(model, publish=publish, now=now, resend_after_s=resend_after_s, limit=limit)
        result.published, result.publish_error = sent.published, sent.publish_error
    return result


def jobs_publish_pending(
    model: type[Job], *, publish: Publish, now: datetime | None = None,
    resend_after_s: float | None = None, limit: int = 500,
) -> ReapResult:
    """The outbox sender: publish pending jobs never published, or published long ago.

    ``publish(pk)`` sends the task and raises when the broker is unreachable; the first
    failure stops the pass (the broker is down for the rest too) and the rows stay pending
    for the next pass. A job published twice is harmless: only one delivery claims it.
    When ``publish`` returns False it ran the job inline and the row is not marked: one that
    is still pending (it gave its lease back to wait) is due again on the next pass.
    ``resend_after_s`` covers a message lost with its worker (a prefetched, unacknowledged
    task waits for the broker's visibility timeout, hours); None never re-sends.
    """
    now = now or timezone.now()
    due = Q(enqueued_at__isnull=True)
    if resend_after_s is not None:
        due |= Q(enqueued_at__lt=now - timedelta(seconds=resend_after_s))
    pks = list(
        model._default_manager.filter(due, status=model.pending_status).order_by("created_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    result = ReapResult()
    for pk in pks:
        try:
            sent = publish(pk)
        except Exception as exc:  # any broker trouble: the row stays pending for the next pass
            result.publish_error = f"{type(exc).__name__}: {exc}"
            log.warning("%s sender: publishing %s failed (%s); will retry", model.__name__, pk, result.publish_error)
            break
        if sent is not False:
            job_mark_enqueued(model, pk=pk, now=now)
        result.published.append(pk)
    return result


def job_mark_enqueued(model: type[Job], *, pk: int, now: datetime | None = None) -> None:
    """Record that the task was handed to the broker (only while still pending)."""
    now = now or timezone.now()
    model._default_manager.filter(pk=pk, status=model.pending_status).update(enqueued_at=now, updated_at=now)


# --- the embedded scheduler -----------------------------------------------------------------


class JobsScheduler:
    """Runs the reaper tasks every ``interval_s`` from one daemon thread of the served process.

    The embedded default has no broker and so no beat: without this, a job whose process
    died (a restarted ``runserver``, a killed web worker) would stay "running" for good. The
    reapers are the very Celery tasks beat sends (``FTOPS_JOB_REAPER_TASKS``), called in this
    process; every transition they make is a conditional UPDATE, so two web processes that
    both run a scheduler, or a scheduler and beat, do no harm. In the embedded mode a job the
    reaper re-queues runs here, in this thread (tasks run in-process there).
    """

    def __init__(self, *, tasks: list[str], interval_s: float) -> None:
        self.tasks = list(tasks)
        self.interval_s = interval_s
        self.passes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run_once(self) -> dict[str, Any]:
        """One pass over every reaper; one reaper's failure never stops the others."""
        from importlib import import_module

        from celery import current_app

        results: dict[str, Any] = {}
        for name in self.tasks:
            try:
                import_module(name.rsplit(".", 1)[0])  # registers the app's tasks with Celery
                results[name] = current_app.tasks[name].apply().get(propagate=True)
            except Exception as exc:  # logged and retried on the next pass
                log.warning("jobs scheduler: %s failed", name, exc_info=True)
                results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            finally:
                connections.close_all()
        self.passes += 1
        return results

    def start(self) -> JobsScheduler:
        if not self.running:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="ftops-jobs-scheduler", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    def _loop(self) -> None:
        # The first pass at start-up: a process that comes back finds what its predecessor left.
        while True:
            self.run_once()
            if self._stop.wait(self.interval_s):
                return


_scheduler: JobsScheduler | None = None
_scheduler_lock = threading.Lock()


def jobs_scheduler_start(*, force: bool = False) -> JobsScheduler | None:
    """Start the process's reaper thread in the embedded default (no broker); None otherwise.

    Called by the served process (``ftops/wsgi.py``, ``ftops/asgi.py``, and so by
    ``runserver``); tests, the CLI and Celery workers do not start it. With a broker, beat
    sends the reapers instead. ``FTOPS_JOBS_SCHEDULER=0`` turns it off; ``force`` starts it
    whatever the mode (a test).
    """
    global _scheduler
    embedded = bool(getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False))
    if not force and not (embedded and getattr(settings, "FTOPS_JOBS_SCHEDULER", True)):
        return None
    with _scheduler_lock:
        if _scheduler is None or not _scheduler.running:
            _scheduler = JobsScheduler(
                tasks=list(getattr(settings, "FTOPS_JOB_REAPER_TASKS", [])),
                interval_s=float(getattr(settings, "FTOPS_JOBS_REAP_EVERY_S", 30)),
            ).start()
        return _scheduler


def jobs_scheduler_stop() -> None:
    global _scheduler
    with _scheduler_lock:
        if _scheduler is not None:
            _scheduler.stop()
            _scheduler = None
