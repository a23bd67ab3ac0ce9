from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ftops.common.models import AuditEvent
from ftops.training import services
from ftops.training.models import RunStatus, TrainingRun
from tests.training.conftest import FAST_LORA, TESTER, make_records

pytestmark = pytest.mark.django_db
URL = "/api/v1/training/runs"


@pytest.fixture
def version(make_dataset_version: Any) -> Any:
    return make_dataset_version(train=make_records(12), validation=make_records(4, seed=1))


def _create(client: Any, version: Any, **body: Any) -> Any:
    return client.post(URL, {"backend": "lora", "dataset_version": str(version.number), "config": FAST_LORA,
                             **body}, format="json")


def test_ml_orchestrator_creates_a_queued_run(make_key: Any, version: Any, base_path: Path,
                                              django_capture_on_commit_callbacks: Any,
                                              monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    settings.FTOPS_MODEL_ROOTS = [str(base_path.parent)]  # an operator listed the folder the model lives in
    client, key = make_key("ml_orchestrator")
    sent: list[int] = []
    monkeypatch.setattr("ftops.training.tasks.training_run_task.delay", lambda run_id: sent.append(run_id))
    with django_capture_on_commit_callbacks(execute=True):
        response = _create(client, version, base_model=str(base_path), service="weather", name="wx")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "queued" and body["backend"] == "lora" and body["service"] == "weather"
    assert body["dataset_version"] == version.number and body["config"]["r"] == 8
    assert sent == [body["id"]]
    assert AuditEvent.objects.filter(action="training_run.created", object_id=str(body["id"])).count() == 1
    assert TrainingRun.objects.get(pk=body["id"]).created_by == f"key:{key.prefix}"


def test_a_local_base_model_outside_the_model_roots_is_refused(make_key: Any, version: Any,
                                                              base_path: Path) -> None:
    client, _ = make_key("ml_orchestrator")
    for where in ("/etc", str(base_path), "../../../../../usr"):
        response = _create(client, version, base_model=where)
        assert response.status_code == 422
        assert "FTOPS_MODEL_ROOTS" in response.json()["error"]["fields"]["base_model"][0]
    assert not TrainingRun.objects.exists()


@pytest.mark.parametrize("role", ["reviewer", "approver", "ingest"])
def test_other_roles_cannot_create_runs(make_key: Any, version: Any, role: str) -> None:
    client, _ = make_key(role)
    assert _create(client, version).status_code == 403
    assert TrainingRun.objects.count() == 0


def test_bad_input_gets_a_4xx_naming_the_field(make_key: Any, version: Any) -> None:
    client, _ = make_key("ml_orchestrator")
    bad_backend = client.post(URL, {"backend": "gpu", "dataset_version": "1"}, format="json")
    assert bad_backend.status_code == 422 and "backend" in bad_backend.json()["error"]["fields"]
    bad_config = _create(client, version, config={"r": -1})
    assert bad_config.status_code == 422 and bad_config.json()["error"]["fields"] == {"config.r": ["must be >= 1"]}
    missing = client.post(URL, {"backend": "lora", "dataset_version": "999"}, format="json")
    assert missing.status_code == 404 and "999" in missing.json()["error"]["message"]
    assert TrainingRun.objects.count() == 0


def test_list_and_detail(make_key: Any, version: Any, base_path: Path) -> None:
    run = services.training_run_create(actor=TESTER, backend="fewshot", dataset_version=version, enqueue=False)
    other = services.training_run_create(actor=TESTER, backend="lora", dataset_version=version, config=FAST_LORA,
                                         base_model=str(base_path), enqueue=False)
    client, _ = make_key("reviewer")
    listed = client.get(URL).json()
    assert [r["id"] for r in listed["results"]] == [other.pk, run.pk]
    assert [r["id"] for r in client.get(URL, {"backend": "fewshot"}).json()["results"]] == [run.pk]
    assert client.get(URL, {"status": "nope"}).status_code == 422
    detail = client.get(f"{URL}/{run.pk}").json()
    assert detail["id"] == run.pk and detail["log_tail"].endswith("queued\n") and detail["loss_series"] == []
    assert client.get(f"{URL}/99999").status_code == 404


def test_cancel_from_the_api(make_key: Any, version: Any) -> None:
    run = services.training_run_create(actor=TESTER, backend="fewshot", dataset_version=version, enqueue=False)
    reader, _ = make_key("reviewer")
    assert reader.post(f"{URL}/{run.pk}/cancel").status_code == 403
    assert TrainingRun.objects.get(pk=run.pk).status == RunStatus.QUEUED
    client, _ = make_key("ml_orchestrator")
    response = client.post(f"{URL}/{run.pk}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    again = client.post(f"{URL}/{run.pk}/cancel")
    assert again.status_code == 409 and "already cancelled" in again.json()["error"]["message"]
    assert client.post(f"{URL}/424242/cancel").status_code == 404


def test_openapi_schema_documents_the_endpoints(admin_user: Any, client: Any) -> None:
    client.force_login(admin_user)
    schema = client.get("/api/v1/schema", HTTP_ACCEPT="application/json").content.decode()
    assert "training_runs_create" in schema and "training_runs_cancel" in schema
