"""Queued ingest survives dead workers and a dead broker (issue 10 items 5 and 6).

Real PostgreSQL, real Redis and real Celery worker processes that are killed with SIGKILL.
The broker outage points this process's Celery app at a closed port instead of stopping
the shared Redis (other test runs use it).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connections, transaction
from django.test import override_settings
from django.utils import timezone

from ftops.common import jobs
from ftops.interactions import services
from ftops.interactions.models import BatchStatus, IngestBatch, Interaction, idempotency_scope
from ftops.interactions.tasks import interactions_ingest_batch
from tests.celery_fixtures import WorkerHandle, _use_broker, celery_workers  # noqa: F401  (pytest fixture)
from tests.interactions.conftest import catalog, payload  # noqa: F401  (pytest fixtures)

pytestmark = [pytest.mark.services, pytest.mark.celery_worker]

URL = "/api/v1/interactions?async=1"
LEASE_S = 4
DEAD_BROKER = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def post(client: Any, body: Any) -> Any:
    return client.post(URL, data=json.dumps(body), content_type="application/json")


def batch_status(batch_id: int) -> str:
    return str(IngestBatch.objects.values_list("status", flat=True).get(pk=batch_id))


class RowBlocker:
    """Holds an uncommitted insert of one (scope, id) from another connection, so a worker
    storing a batch with that id waits inside its insert: a worker caught mid-batch."""

    def __init__(self, *, scope: str, external_id: str, service_id: int) -> None:
        self.ready = threading.Event()
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._hold, args=(scope, external_id, service_id), daemon=True)

    def _hold(self, scope: str, external_id: str, service_id: int) -> None:
        try:
            with transaction.atomic():
                Interaction.objects.create(scope=scope, external_id=external_id, body_hash="blocker",
                                           service_id=service_id, timestamp=timezone.now())
                self.ready.set()
                self.release.wait(timeout=120)
                transaction.set_rollback(True)
        finally:
            connections.close_all()

    def __enter__(self) -> RowBlocker:
        self.thread.start()
        assert self.ready.wait(timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.thread.join(timeout=30)


@override_settings(FTOPS_INGEST_LEASE_S=LEASE_S)
def test_a_batch_whose_worker_is_killed_is_finished_by_the_next_worker(
    celery_workers: Callable[..., WorkerHandle],  # noqa: F811
    catalog: Any,  # noqa: F811
    payload: Any,  # noqa: F811
    make_key: Any,
) -> None:
    client, key = make_key("ingest")
    first = celery_workers(FTOPS_INGEST_LEASE_S=str(LEASE_S))
    body = [payload(f"kill-{i}") for i in range(20)]
    with RowBlocker(scope=idempotency_scope(key), external_id="kill-7", service_id=catalog["payments"].pk):
        response = post(client, body)
        assert response.status_code == 202, response.content
        batch_id = response.json()["id"]
        first.wait_for(lambda: batch_status(batch_id) == BatchStatus.RUNNING, what="the first worker's claim")
        owner = IngestBatch.objects.get(pk=batch_id).lease_owner
        first.kill()  # mid-batch: its insert is waiting on the blocked id
    batch = IngestBatch.objects.get(pk=batch_id)
    assert (batch.status, batch.lease_owner, batch.attempts) == (BatchStatus.RUNNING, owner, 1)
    assert Interaction.objects.filter(api_key=key).count() == 0  # nothing half-stored

    second = celery_workers(FTOPS_INGEST_LEASE_S=str(LEASE_S))
    # The killed worker's message is unacknowledged and invisible for hours (visibility
    # timeout); the lease is what frees the batch. Beat runs the reaper; here the test does.
    second.wait_for(lambda: IngestBatch.objects.get(pk=batch_id).lease_expires_at < timezone.now(),
                    timeout=LEASE_S * 3, what="the dead worker's lease to expire")
    reaped = services.ingest_batches_reap()
    assert (reaped.requeued, reaped.published) == ([batch_id], [batch_id])
    second.wait_for(lambda: batch_status(batch_id) == BatchStatus.SUCCEEDED, timeout=60,
                    what="the second worker to finish the batch")
    batch = IngestBatch.objects.get(pk=batch_id)
    assert (batch.attempts, batch.result, batch.rows, batch.error, batch.lease_owner) == (
        2, {"created": 20, "replayed": 0}, [], {}, "")
    assert Interaction.objects.filter(api_key=key).count() == 20


@override_settings(FTOPS_INGEST_LEASE_S=LEASE_S)
def test_a_delivery_inside_a_dead_workers_lease_comes_back_instead_of_being_dropped(
    celery_workers: Callable[..., WorkerHandle],  # noqa: F811
    catalog: Any,  # noqa: F811
    payload: Any,  # noqa: F811
    make_key: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, key = make_key("ingest")
    worker = celery_workers(FTOPS_INGEST_LEASE_S=str(LEASE_S))
    with monkeypatch.context() as patch:
        patch.setattr(services, "_publish_batch", lambda batch_id: None)  # queue it without a message
        batch = services.interactions_ingest_enqueue(payloads=[payload("held-1")], api_key=key).batch
    # A worker claimed it and died at once; the broker hands the task to another worker
    # while the dead one's lease still runs (as when a prefork child is killed).
    assert jobs.job_claim(IngestBatch, pk=batch.pk, owner="dead-worker") is not None
    interactions_ingest_batch.delay(batch.pk)
    worker.wait_for(lambda: batch_status(batch.pk) == BatchStatus.SUCCEEDED, timeout=60,
                    what="the redelivered task to come back after the lease and finish the batch")
    assert "Retry in" in worker.log()
    batch.refresh_from_db()
    assert (batch.attempts, batch.result) == (2, {"created": 1, "replayed": 0})


def test_a_broker_outage_answers_503_and_the_sender_queues_the_durable_batch_later(
    celery_workers: Callable[..., WorkerHandle],  # noqa: F811
    catalog: Any,  # noqa: F811
    payload: Any,  # noqa: F811
    make_key: Any,
    redis_url: str,
) -> None:
    from ftops.celery import app

    client, key = make_key("ingest")
    worker = celery_workers()
    body = [payload(f"outage-{i}") for i in range(5)]
    _use_broker(app, DEAD_BROKER, eager=False)
    try:
        down = post(client, body)
        assert (down.status_code, down["Retry-After"]) == (503, "10")
        error = down.json()["error"]
        assert error["code"] == "broker_unavailable"
        batch_id = error["fields"]["batch"]["id"]
        batch = IngestBatch.objects.get(pk=batch_id)
        assert (batch.status, batch.enqueued_at, batch.size) == (BatchStatus.PENDING, None, 5)  # durable
        retry = post(client, body)  # the client's retry finds the first batch
        assert (retry.status_code, retry.json()["error"]["fields"]["batch"]["id"]) == (503, batch_id)
        assert IngestBatch.objects.count() == 1
        assert services.ingest_batches_reap().publish_error  # the sender cannot publish either
    finally:
        _use_broker(app, redis_url, eager=False)

    sent = services.ingest_batches_reap()  # what beat runs every few seconds
    assert (sent.published, sent.publish_error) == ([batch_id], "")
    worker.wait_for(lambda: batch_status(batch_id) == BatchStatus.SUCCEEDED, timeout=60,
                    what="the published batch to be stored")
    assert Interaction.objects.filter(api_key=key).count() == 5
    again = post(client, body)
    assert (again.status_code, again.json()["id"], again.json()["status"]) == (202, batch_id, "succeeded")
    assert again["Idempotent-Replayed"] == "true"
    assert IngestBatch.objects.get(pk=batch_id).attempts == 1


def test_with_a_broker_failures_reach_the_review_queue_through_the_worker(
    celery_workers: Callable[..., WorkerHandle],  # noqa: F811
    catalog: Any,  # noqa: F811
    payload: Any,  # noqa: F811
    make_key: Any,
) -> None:
    from review.models import ReviewItem

    client, _ = make_key("ingest")
    worker = celery_workers()
    # Stored by this process (the web), queued for review by the worker.
    response = client.post("/api/v1/interactions", data=json.dumps([payload("sync-bad", success=False),
                                                                      payload("sync-ok")]),
                           content_type="application/json")
    assert response.status_code == 201, response.content
    # Stored by the worker (a queued batch), then queued for review by a task it sends itself.
    assert post(client, [payload("async-bad", user_feedback=1), payload("async-ok")]).status_code == 202
    worker.wait_for(lambda: ReviewItem.objects.count() == 2, timeout=60, what="both failures to be queued")
    assert sorted(ReviewItem.objects.values_list("interaction__external_id", "failure_kind")) == [
        ("async-bad", "negative_feedback"), ("sync-bad", "unsuccessful")]
    assert "review.tasks.enqueue_interactions" in worker.log()
