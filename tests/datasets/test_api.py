from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ftops.catalog.models import Service
from ftops.common.models import AuditEvent
from ftops.datasets.exports import validate_hf_line, validate_openai_line
from ftops.datasets.models import DatasetVersion, TrainingExample
from ftops.datasets.services import dataset_version_build
from tests.datasets.conftest import refund_expected
from tests.datasets.factories import build_shop

MakeKey = Callable[..., tuple[Any, Any]]

BODY = {"service": "payments", "user_query": "Refund 20 euros on pay_1", "behavior": "call",
        "expected": refund_expected()}


def test_create_get_list_and_patch_examples(payments: Service, make_key: MakeKey) -> None:
    client, _key = make_key("reviewer")
    created = client.post("/api/v1/examples", BODY, format="json")
    assert created.status_code == 201, created.content
    data = created.json()
    assert (data["service"], data["tool"], data["schema_version"], data["source"], data["quality"]) == (
        "payments", "refund_payment", 1, "manual", "high")
    assert data["provenance"]["via"] == "api"
    listed = client.get("/api/v1/examples", {"q": "pay_1", "tool": "refund_payment"}).json()
    assert listed["count"] == 1 and listed["results"][0]["id"] == data["id"]
    assert client.get("/api/v1/examples", {"q": "nothing like it"}).json()["count"] == 0
    assert client.get(f"/api/v1/examples/{data['id']}").json()["user_query"] == "Refund 20 euros on pay_1"
    patched = client.patch(f"/api/v1/examples/{data['id']}", {"quality": "medium", "explanation": "checked"},
                           format="json")
    assert patched.status_code == 200
    assert (patched.json()["quality"], patched.json()["explanation"]) == ("medium", "checked")
    assert AuditEvent.objects.filter(action="example.updated").count() == 1


def test_invalid_example_is_a_422_naming_the_field(payments: Service, make_key: MakeKey) -> None:
    client, _ = make_key("ml_orchestrator")
    body = {**BODY, "expected": {"calls": [{"name": "refund_payment", "arguments": {"amount": [20]}}]}}
    response = client.post("/api/v1/examples", body, format="json")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    assert error["fields"] == {"expected.calls[0].arguments.payment_id": [
        "'payment_id' is required by refund_payment; give its acceptable values"]}
    response = client.post("/api/v1/examples", {**BODY, "behavior": "guess"}, format="json")
    assert response.status_code == 422 and "behavior" in response.json()["error"]["fields"]
    example_id = client.post("/api/v1/examples", BODY, format="json").json()["id"]
    bad_patch = client.patch(f"/api/v1/examples/{example_id}", {"tool": "get_order"}, format="json")
    assert bad_patch.status_code == 422
    assert TrainingExample.objects.get(pk=example_id).tool.name == "refund_payment"  # type: ignore[union-attr]
    assert client.get("/api/v1/examples/999999").status_code == 404
    assert TrainingExample.objects.count() == 1


def test_roles_are_enforced(payments: Service, make_key: MakeKey, api_client: Any) -> None:
    ingest, _ = make_key("ingest")
    assert ingest.post("/api/v1/examples", BODY, format="json").status_code == 403
    assert ingest.get("/api/v1/examples").status_code == 403
    assert api_client.get("/api/v1/examples").status_code in (401, 403)
    reviewer, _ = make_key("reviewer")
    assert reviewer.post("/api/v1/datasets", {"seed": 1}, format="json").status_code == 403
    assert reviewer.get("/api/v1/datasets/latest/export?split=train").status_code == 403
    assert TrainingExample.objects.count() == 0 and DatasetVersion.objects.count() == 0


def test_dataset_build_detail_and_export_download(db: Any, make_key: MakeKey,
                                                  django_capture_on_commit_callbacks: Any) -> None:
    build_shop()
    client, _ = make_key("ml_orchestrator")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/api/v1/datasets", {"seed": 3, "params": {"rotation": 1}}, format="json")
    assert response.status_code == 202
    assert response.json()["number"] == 1
    audit = AuditEvent.objects.get(action="dataset.build_requested")
    assert audit.actor.startswith("key:") and audit.api_key is not None
    assert audit.object_id == str(DatasetVersion.objects.get(number=1).pk)
    assert audit.detail["seed"] == 3 and audit.detail["params"]["rotation"] == 1
    detail = client.get("/api/v1/datasets/1").json()
    assert detail["status"] == "ready" and detail["params"]["rotation"] == 1
    assert detail["quality_report"]["tools_covered"] == 6
    download = client.get("/api/v1/datasets/latest/export", {"split": "train", "format": "openai"})
    assert download.status_code == 200
    assert download["Content-Disposition"] == 'attachment; filename="dataset-v1-train-openai.jsonl"'
    lines = [json.loads(x) for x in download.content.decode().splitlines()]
    assert len(lines) == detail["quality_report"]["split_sizes"]["train"] == int(download["X-Ftops-Lines"])
    assert all(validate_openai_line(line) == [] for line in lines)
    hf = client.get("/api/v1/datasets/1/export", {"split": "test", "format": "hf"})
    assert all(validate_hf_line(json.loads(x)) == [] for x in hf.content.decode().splitlines())
    holdout = client.get("/api/v1/datasets/1/export", {"split": "holdout"})
    assert holdout.status_code == 403 and "holdout" in holdout.json()["error"]["message"]
    assert client.get("/api/v1/datasets/7").status_code == 404
    bad = client.post("/api/v1/datasets", {"seed": 1, "params": {"shuffle": True}}, format="json")
    assert bad.status_code == 422 and "shuffle" in bad.json()["error"]["fields"]


def test_schema_migration_endpoint(payments: Service, make_key: MakeKey) -> None:
    from ftops.catalog.models import Tool
    from tests.datasets.conftest import new_schema_version
    from tests.datasets.test_schema_evolution import refund_v2

    client, _ = make_key("ml_orchestrator")
    example_id = client.post("/api/v1/examples", BODY, format="json").json()["id"]
    new_schema_version(Tool.objects.get(name="refund_payment"), refund_v2(rename=True))
    response = client.post("/api/v1/examples/schema-migrations",
                           {"service": "payments", "tool": "refund_payment",
                            "renames": {"payment_id": "payment_reference"}}, format="json")
    assert response.status_code == 200
    assert response.json()["migrated"] == [example_id] and response.json()["to_version"] == 2
    missing = client.post("/api/v1/examples/schema-migrations", {"service": "payments", "tool": "nope"},
                          format="json")
    assert missing.status_code == 404


def test_version_built_in_process_is_listed(db: Any, make_key: MakeKey) -> None:
    build_shop()
    dataset_version_build(seed=1)
    client, _ = make_key("reviewer")
    listed = client.get("/api/v1/datasets").json()
    assert listed["count"] == 1 and listed["results"][0]["status"] == "ready"
    assert "quality_report" not in listed["results"][0]
