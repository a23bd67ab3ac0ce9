"""Celery tasks for the ``ingestion`` queue: ids in, one service call."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from ftops.interactions.services import ingest_batch_process


@shared_task(
    name="ftops.interactions.tasks.interactions_ingest_batch",
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    max_retries=5,
)
def interactions_ingest_batch(batch_id: int) -> str:
    batch = ingest_batch_process(batch_id=batch_id)
    return "skipped" if batch is None else str(batch.status)
