"""Queued ingestion through Redis and a real Celery worker process."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ftops.interactions.models import BatchStatus, IngestBatch, Interaction
from tests.celery_fixtures import WorkerHandle, celery_worker  # noqa: F401  (pytest fixture)
from tests.interactions.conftest import catalog, payload  # noqa: F401  (pytest fixtures)


def test_shared_tasks_bind_to_the_project_app_once_django_has_started() -> None:
    # ``ftops/__init__`` no longer creates the Celery app; CommonConfig.ready() does, so a
    # task sent from a web process or the CLI uses the project's broker settings, not
    # Celery's default app.
    from celery import current_app

    # Asked before this test imports ftops.celery itself (which would make it current).
    assert current_app.main == "ftops"
    from ftops.celery import app
    from ftops.interactions.tasks import interactions_ingest_batch
    from ftops.training.tasks import training_run_task

    assert current_app._get_current_object() is app
    assert training_run_task.app is app and interactions_ingest_batch.app is app
    assert "ftops.training.tasks.training_run_task" in app.tasks


@pytest.mark.services
@pytest.mark.celery_worker
def test_queued_batch_is_stored_by_a_real_worker(
    celery_worker: WorkerHandle,  # noqa: F811
    catalog: Any,  # noqa: F811
    payload: Any,  # noqa: F811
    make_key: Any,
) -> None:
    client, key = make_key("ingest")
    batch_body = [payload(f"w-{i}", response_text=f"reach me at user{i}@acme.example") for i in range(25)]
    batch_body[3]["tool_calls"] = [{"name": "create_payment", "arguments": {"currency": "USD"}}]
    response = client.post("/api/v1/interactions?async=1", data=json.dumps(batch_body),
                           content_type="application/json")
    assert response.status_code == 202, response.content
    batch_id = response.json()["id"]
    assert Interaction.objects.count() == 0  # nothing stored in the request itself

    def finished() -> bool:
        return IngestBatch.objects.get(pk=batch_id).status in (BatchStatus.SUCCEEDED, BatchStatus.FAILED)

    celery_worker.wait_for(finished, timeout=60, what=f"batch {batch_id} to be processed")
    batch = IngestBatch.objects.get(pk=batch_id)
    assert (batch.status, batch.rows, batch.attempts) == (BatchStatus.SUCCEEDED, [], 1)
    assert batch.result == {"created": 25, "replayed": 0}
    assert Interaction.objects.filter(api_key=key).count() == 25
    bad = Interaction.objects.get(external_id="w-3")
    assert (bad.call_verdict, bad.failure_kind) == ("invalid", "missing_required")
    assert Interaction.objects.get(external_id="w-7").response_text == "reach me at [EMAIL]"
    assert "interactions_ingest_batch" in celery_worker.log()
