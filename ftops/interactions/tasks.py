"""Celery tasks for the ``ingestion`` queue: ids in, one service call."""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task
from django.db import InterfaceError, OperationalError

from ftops.interactions.services import (
    IngestBusy,
    IngestContended,
    LeaseHeld,
    ingest_batch_process,
    ingest_batches_reap,
)

# Comebacks while another worker's lease is live; the reaper is the backstop after that.
LEASE_WAITS = 10


@shared_task(
    bind=True,
    name="ftops.interactions.tasks.interactions_ingest_batch",
    autoretry_for=(OperationalError, InterfaceError, IngestBusy, IngestContended),
    retry_backoff=True,
    max_retries=5,
)
def interactions_ingest_batch(self: Task, batch_id: int) -> str:
    try:
        batch = ingest_batch_process(batch_id=batch_id)
    except LeaseHeld as held:
        if self.request.is_eager:
            return "held"  # in-process: the holder is this very process, and it finishes the batch
        # The holder may be a worker that was just killed (its message redelivered at once):
        # acknowledging this delivery and dropping it would strand the batch until the reaper.
        # Come back just after the lease ends, when a dead holder's batch becomes claimable.
        raise self.retry(countdown=held.remaining_s + 1, max_retries=LEASE_WAITS) from held
    return "skipped" if batch is None else str(batch.status)


@shared_task(name="ftops.interactions.tasks.ingest_batches_reap")
def ingest_batches_reap_task() -> dict[str, Any]:
    return ingest_batches_reap().as_dict()
