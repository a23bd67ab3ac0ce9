"""REST API: create runs (ml_orchestrator), read runs and failures, compare."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ftops.common.models import AuditEvent
from ftops.evaluation.models import EvalRun, EvalSuite, RunStatus
from ftops.evaluation.services import bfcl_suite_import, eval_run_create, eval_run_execute
from tests.evaluation.factories import dataset_version
from tests.evaluation.helpers import NO_ANSWERS, write_mini_bfcl

pytestmark = pytest.mark.django_db
RUNS = "/api/v1/evaluation/runs"


@pytest.fixture
def suite(tmp_path: Path) -> EvalSuite:
    return bfcl_suite_import(data_dir=write_mini_bfcl(tmp_path / "bfcl"), name="mini").suite


def answers(tmp_path: Path, unit: str = "cm") -> dict[str, Any]:
    path = tmp_path / f"answers-{unit}.jsonl"
    rows = [{"id": "simple_python_0", "result": [{"calc.area": {"base": 10, "height": 5.0}}]},
            {"id": "simple_python_1", "result": [{"calc.area": {"base": 3, "height": 4.0, "unit": unit}}]},
            {"id": "irrelevance_0", "result": []}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"kind": "replay", "path": str(path)}


def test_orchestrator_creates_a_run_that_runs_on_commit(make_key: Any, suite: EvalSuite, tmp_path: Path,
                                                        django_capture_on_commit_callbacks: Any) -> None:
    client, key = make_key("ml_orchestrator")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(RUNS, {"suite": "mini", "adapter_config": answers(tmp_path), "name": "nightly"},
                               format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["name"], body["suite"]["name"], body["status"], body["created_by"]) == (
        "nightly", "mini", "queued", f"key:{key.prefix}")
    run = EvalRun.objects.get(pk=body["id"])
    assert (run.status, run.exact) == (RunStatus.SUCCEEDED, 100.0)
    detail = client.get(f"{RUNS}/{run.pk}").json()
    assert detail["metrics"]["by_category"]["simple_python"]["exact"] == 100.0
    assert detail["progress_percent"] == 100


def test_create_on_a_dataset_version_split(make_key: Any, tmp_path: Path) -> None:
    version = dataset_version(number=4)
    client, _ = make_key("ml_orchestrator")
    response = client.post(RUNS, {"dataset_version": 4, "split": "test", "adapter_config": answers(tmp_path)},
                           format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["suite"] == {**response.json()["suite"], "kind": "dataset", "dataset_version": 4,
                                        "split": "test", "name": "dataset v4 test"}
    assert EvalSuite.objects.get(kind="dataset").dataset_version == version


@pytest.mark.parametrize(("body", "field"), [
    ({"adapter_config": NO_ANSWERS}, "suite"),
    ({"suite": "mini"}, "adapter_config"),
    ({"suite": "mini", "adapter_config": {"kind": "openai", "credential": "c"}}, "adapter_config.model"),
    ({"suite": "mini", "adapter_config": NO_ANSWERS, "limit": 0}, "limit"),
    ({"suite": "mini", "adapter_config": ["replay"]}, "adapter_config"),
])
def test_bad_input_is_422_naming_the_field(make_key: Any, suite: EvalSuite, body: dict[str, Any], field: str) -> None:
    client, _ = make_key("ml_orchestrator")
    response = client.post(RUNS, body, format="json")
    assert response.status_code == 422
    assert field in response.json()["error"]["fields"]
    assert EvalRun.objects.count() == 0


def test_unknown_suite_is_404(make_key: Any, suite: EvalSuite) -> None:
    client, _ = make_key("ml_orchestrator")
    response = client.post(RUNS, {"suite": "nope", "adapter_config": NO_ANSWERS}, format="json")
    assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found")
    assert client.get(f"{RUNS}/999").status_code == 404


def test_roles(make_key: Any, api_client: Any, suite: EvalSuite, tmp_path: Path) -> None:
    reviewer, _ = make_key("reviewer")
    response = reviewer.post(RUNS, {"suite": "mini", "adapter_config": answers(tmp_path)}, format="json")
    assert response.status_code == 403
    assert EvalRun.objects.count() == 0
    assert AuditEvent.objects.filter(action="permission.denied", object_id="RunsApi").count() == 1
    assert reviewer.get(RUNS).status_code == 200
    ingest, _ = make_key("ingest")
    assert ingest.get(RUNS).status_code == 403
    assert api_client.get(RUNS).status_code in (401, 403)


def test_list_failures_and_compare(make_key: Any, suite: EvalSuite, tmp_path: Path) -> None:
    base = eval_run_execute(run_id=eval_run_create(suite=suite, adapter_config=answers(tmp_path, "mm"),
                                                   enqueue=False).pk)
    other = eval_run_execute(run_id=eval_run_create(suite=suite, adapter_config=answers(tmp_path), enqueue=False).pk)
    client, _ = make_key("approver")
    listing = client.get(RUNS, {"status": "succeeded"}).json()
    assert [r["id"] for r in listing["results"]] == [other.pk, base.pk]
    failures = client.get(f"{RUNS}/{base.pk}/failures", {"error_type": "value_error:string"}).json()
    assert [f["record_id"] for f in failures["results"]] == ["simple_python_1"]
    assert client.get(f"{RUNS}/{base.pk}/failures", {"category": "irrelevance"}).json()["count"] == 0
    comparison = client.get("/api/v1/evaluation/compare", {"base": base.pk, "other": other.pk}).json()
    assert (comparison["delta"], comparison["fixed"], comparison["regressed"]) == (33.33, ["simple_python_1"], [])
    assert comparison["groups"]["category"][1] == {"name": "simple_python", "label": "simple_python", "base_n": 2,
                                                   "base_exact": 50.0,
                                                   "other_n": 2, "other_exact": 100.0, "delta": 50.0}
    bad = client.get("/api/v1/evaluation/compare", {"base": base.pk})
    assert (bad.status_code, list(bad.json()["error"]["fields"])) == (422, ["other"])
    suites = client.get("/api/v1/evaluation/suites").json()
    assert [s["name"] for s in suites["results"]] == ["mini"]


def test_cancel_endpoint(make_key: Any, suite: EvalSuite, tmp_path: Path) -> None:
    run = eval_run_create(suite=suite, adapter_config=answers(tmp_path), enqueue=False)
    approver, _ = make_key("approver")
    assert approver.post(f"{RUNS}/{run.pk}/cancel").status_code == 403
    client, _ = make_key("ml_orchestrator")
    response = client.post(f"{RUNS}/{run.pk}/cancel")
    assert (response.status_code, response.json()["status"]) == (200, "cancelled")
    done = eval_run_execute(run_id=eval_run_create(suite=suite, adapter_config=answers(tmp_path), enqueue=False).pk)
    again = client.post(f"{RUNS}/{done.pk}/cancel")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "conflict")


def test_schema_documents_the_endpoints(admin_user: Any, client: Any) -> None:
    client.force_login(admin_user)
    schema = client.get("/api/v1/schema", HTTP_ACCEPT="application/json").content.decode()
    for operation in ("evaluation_runs_create", "evaluation_runs_get", "evaluation_compare",
                      "evaluation_run_failures", "evaluation_suites_list"):
        assert operation in schema
