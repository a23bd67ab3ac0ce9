"""Curation work travels through Redis to a real Celery worker consuming the ``curation`` queue."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ftops.datasets.models import CurationRun, DatasetVersion, TrainingExample
from tests.celery_fixtures import WorkerHandle, _use_broker, start_worker
from tests.datasets.factories import build_shop

pytestmark = [pytest.mark.services, pytest.mark.celery_worker]


@pytest.fixture
def curation_worker(transactional_db: Any, redis_url: str, tmp_path: Path) -> Iterator[WorkerHandle]:
    from django.db import connection

    from ftops.celery import app

    if connection.vendor != "postgresql":
        pytest.skip("the real-worker test shares the test database: run it on PostgreSQL (DATABASE_URL=postgres://…)")
    handle = start_worker(redis_url=redis_url, tmp_path=tmp_path, queues="curation", label="curation")
    saved = (app.conf.broker_url, app.conf.task_always_eager)
    try:
        _use_broker(app, redis_url, eager=False)
        yield handle
    finally:
        _use_broker(app, saved[0], eager=saved[1])
        handle.process.terminate()
        try:
            handle.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            handle.kill()


def test_build_and_curation_run_on_the_curation_queue(curation_worker: WorkerHandle, make_key: Any) -> None:
    build_shop()
    client, _ = make_key("ml_orchestrator")
    response = client.post("/api/v1/datasets", {"seed": 2}, format="json")
    assert response.status_code == 202 and response.json()["status"] == "pending"
    number = response.json()["number"]

    def built() -> bool:
        return DatasetVersion.objects.get(number=number).status in ("ready", "failed")

    curation_worker.wait_for(built, timeout=240, what=f"dataset version {number} to be built")
    version = DatasetVersion.objects.get(number=number)
    assert (version.status, version.progress) == ("ready", 100), version.error
    assert version.quality_report["total_examples"] == TrainingExample.objects.count()
    assert "dataset_version_build_task" in curation_worker.log()

    run = client.post("/api/v1/curation/runs", {"kind": "triggers"}, format="json").json()
    curation_worker.wait_for(lambda: CurationRun.objects.get(pk=run["id"]).status in ("ready", "failed"),
                             timeout=120, what="the trigger run")
    # The run hands the triggers to the loop by task name (same queue); the loop reports back.
    curation_worker.wait_for(lambda: "fired" in CurationRun.objects.get(pk=run["id"]).result.get("triggers", {}),
                             timeout=120, what="the loop's trigger report")
    done = CurationRun.objects.get(pk=run["id"])
    assert done.status == "ready" and done.progress == 100
    assert "triggers_evaluate_task" in curation_worker.log()
    # 125 new high-quality examples for the shop service: above the configured 100
    assert [e["kind"] for e in done.result["triggers"]["fired"]] == ["high_quality_examples"]
