"""With a broker the catalog hands examples to curation's worker by task name; the job reports the counts.

The embedded default (every other catalog test) runs those tasks in-process at once. Here
``task_always_eager`` is off, the on-commit publish is captured instead of sent, and the
worker's side is run the way its task would run it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from celery import current_app
from rest_framework.test import APIClient

from ftops.catalog.models import CatalogImportJob, ImportKind, Tool
from ftops.catalog.services import catalog_import, catalog_import_documents
from ftops.common.jobs import JobStatus
from ftops.common.models import AuditEvent
from ftops.datasets.models import ExampleStatus, TrainingExample
from ftops.datasets.services.catalog_imports import catalog_import_examples_run
from ftops.datasets.tasks import examples_migrate_schema_task
from tests.catalog.factories import shipping_doc
from tests.celery_fixtures import _use_broker

pytestmark = pytest.mark.django_db

IMPORT = "/api/v1/catalog/import"
MakeKey = Callable[..., tuple[APIClient, Any]]


@pytest.fixture
def broker_mode() -> Iterator[None]:
    before = current_app.conf.task_always_eager
    current_app.conf.task_always_eager = False
    try:
        yield
    finally:
        current_app.conf.task_always_eager = before


def test_documents_become_a_job_that_curation_runs(broker_mode: None, make_key: MakeKey,
                                                   django_capture_on_commit_callbacks: Any) -> None:
    client, key = make_key("admin")

    with django_capture_on_commit_callbacks(execute=False) as published:
        response = client.post(IMPORT, {"content": [shipping_doc()], "source": "shipping-team"}, format="json")

    assert response.status_code == 202, response.json()
    body = response.json()
    assert (body["kind"], body["status"], body["result"]) == ("documents", "pending", None)
    assert len(published) == 1  # the job's task, sent once the row is committed
    assert (Tool.objects.count(), TrainingExample.objects.count()) == (0, 0)  # nothing written yet
    job = CatalogImportJob.objects.get(pk=body["id"])
    assert job.kind == ImportKind.DOCUMENTS and job.documents is not None

    done = catalog_import_examples_run(job_id=job.pk)

    assert done is not None and done.status == JobStatus.SUCCEEDED
    assert catalog_import_examples_run(job_id=job.pk) is None  # a second delivery does nothing
    status = client.get(body["status_url"]).json()
    assert status["result"]["examples_created"] == 6
    assert status["result"]["tools_created"] == ["shipping.create_label", "shipping.get_latest_order"]
    assert TrainingExample.objects.filter(service__name="shipping").count() == 6
    audit = AuditEvent.objects.get(action="catalog.imported")
    assert (audit.api_key_id, audit.detail["job"], audit.detail["examples_created"]) == (key.pk, job.pk, 6)


def test_a_job_with_an_invalid_example_writes_nothing_and_says_why(broker_mode: None,
                                                                    django_capture_on_commit_callbacks: Any) -> None:
    doc = shipping_doc()
    doc["training_examples"][0]["correct_parameters"]["carrier"] = "pigeon"
    with django_capture_on_commit_callbacks(execute=False):
        report = catalog_import_documents(documents=[doc], source="bad.json")
    assert report.pending and report.job is not None

    job = catalog_import_examples_run(job_id=report.job)

    assert job is not None and job.status == JobStatus.FAILED
    assert job.error["code"] == "validation_failed"
    assert list(job.error["fields"]) == ["documents[0].training_examples[0]"]
    assert (Tool.objects.count(), TrainingExample.objects.count()) == (0, 0)
    assert AuditEvent.objects.get(action="catalog.import_failed").detail["job"] == job.pk


def test_a_schema_change_sends_the_example_migration_by_name(broker_mode: None,
                                                             django_capture_on_commit_callbacks: Any) -> None:
    current_app.conf.task_always_eager = True  # the first import in-process: examples exist
    catalog_import_documents(documents=[shipping_doc()], source="v1.json")
    current_app.conf.task_always_eager = False
    tools = [{"type": "function", "function": {"name": "create_label", "description": "Create a label.",
                                               "parameters": {"type": "object", "properties": {
                                                   "order": {"type": "string"}}, "required": ["order"]}}}]

    with django_capture_on_commit_callbacks(execute=False) as sent:
        report = catalog_import(source="v2", content=tools, fmt="openai-tools", service="shipping")

    # The migration, sent by name, and the owners' notification of the breaking change.
    assert len(sent) == 2 and "examples_migrate_schema_task" in repr(sent[0])
    assert (report.examples_migrated, report.examples_flagged) == (0, 0)
    assert report.notes[-1] == "older examples of the changed tools are being moved to the new schemas by a worker"
    assert TrainingExample.objects.filter(status=ExampleStatus.FLAGGED).count() == 0

    counts = examples_migrate_schema_task.apply(
        kwargs={"tool_ids": [Tool.objects.get(name="create_label").pk], "actor": "system"}).get()

    assert counts == {"migrated": 1, "flagged": 4}
    assert TrainingExample.objects.filter(status=ExampleStatus.FLAGGED).count() == 4


def test_a_url_jobs_migration_counts_land_on_the_job(broker_mode: None, make_key: MakeKey,
                                                     django_capture_on_commit_callbacks: Any) -> None:
    client, _ = make_key("admin")
    current_app.conf.task_always_eager = True
    catalog_import_documents(documents=[shipping_doc()], source="v1.json")
    current_app.conf.task_always_eager = False
    tools = [{"name": "create_label", "parameters": {"type": "object", "properties": {"order": {"type": "string"}},
                                                     "required": ["order"]}}]
    job = CatalogImportJob.objects.create(source="http://mcp.example/mcp", actor="admin")
    # What the catalog worker does for a URL job: import, then finish the job with the report.
    with django_capture_on_commit_callbacks(execute=False) as sent:
        report = catalog_import(source="v2", content=tools, fmt="openai-tools", service="shipping", job=job.pk)
    CatalogImportJob.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED, result=report.as_dict())
    assert len(sent) == 2 and "examples_migrate_schema_task" in repr(sent[0])  # and the owners' notification

    # The curation worker, later: its task (sent by name) carries the job's id.
    examples_migrate_schema_task.apply(kwargs={
        "tool_ids": [Tool.objects.get(name="create_label").pk], "actor": "admin", "job_id": job.pk}).get()
    body = client.get(f"/api/v1/catalog/imports/{job.pk}").json()

    assert (body["result"]["examples_migrated"], body["result"]["examples_flagged"]) == (1, 4)
    assert body["result"]["notes"][-1] == ("older examples of the changed tools are being moved to the new schemas "
                                           f"by a worker; import job {job.pk} will show how many")


def test_a_bug_in_the_documents_job_is_a_server_error_not_the_callers(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process too: the job fails as internal, the audit row has the reason, the caller gets no 4xx."""
    from ftops.datasets.services import catalog_imports

    def broken(**_: Any) -> None:
        raise KeyError("boom")

    monkeypatch.setattr(catalog_imports, "examples_import_documents", broken)

    with pytest.raises(RuntimeError, match="failed unexpectedly"):
        catalog_import_documents(documents=[shipping_doc()], source="s.json")

    job = CatalogImportJob.objects.get()
    assert (job.status, job.error["code"]) == (JobStatus.FAILED, "internal_error")
    assert AuditEvent.objects.get(action="catalog.import_failed").detail["kind"] == "internal"
    assert (Tool.objects.count(), TrainingExample.objects.count()) == (0, 0)


def test_documents_and_a_schema_change_run_on_a_real_curation_worker(
        transactional_db: Any, redis_url: str, tmp_path: Any, make_key: MakeKey) -> None:
    """Through Redis: the catalog names curation's tasks, a worker on the curation queue runs them."""
    from django.db import connection

    from ftops.celery import app
    from tests.celery_fixtures import start_worker

    if connection.vendor != "postgresql":
        pytest.skip("the real-worker test shares the test database: run it on PostgreSQL (DATABASE_URL=postgres://…)")
    handle = start_worker(redis_url=redis_url, tmp_path=tmp_path, queues="default,curation", label="catalog")
    saved = (app.conf.broker_url, app.conf.task_always_eager)
    _use_broker(app, redis_url, eager=False)
    try:
        client, _ = make_key("admin")
        response = client.post(IMPORT, {"content": [shipping_doc()], "source": "shipping-team"}, format="json")
        assert response.status_code == 202, response.json()
        job_id = response.json()["id"]
        handle.wait_for(lambda: CatalogImportJob.objects.filter(pk=job_id, status=JobStatus.SUCCEEDED).exists(),
                        timeout=90, what="the documents job to succeed")
        assert client.get(response.json()["status_url"]).json()["result"]["examples_created"] == 6

        tools = [{"name": "create_label", "parameters": {"type": "object", "properties": {
            "order": {"type": "string"}}, "required": ["order"]}}]
        changed = client.post(IMPORT, {"content": tools, "format": "openai-tools", "service": "shipping"},
                              format="json")
        assert changed.status_code == 201, changed.json()
        handle.wait_for(lambda: TrainingExample.objects.filter(status=ExampleStatus.FLAGGED).count() == 4,
                        timeout=90, what="the worker to flag the examples the new schema breaks")
    finally:
        _use_broker(app, saved[0], eager=saved[1])
        handle.process.terminate()
        handle.process.wait(timeout=20)
