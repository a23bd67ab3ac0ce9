"""Registry REST API: roles, the release flow, 409s on races and stale views, 4xx on bad input."""

from __future__ import annotations

from typing import Any

import pytest

from ftops.training.models import TrainingRun
from registry.models import Deployment, DeploymentState, ModelVersion, VersionStatus
from tests.registry.factories import approved, force_status, version

pytestmark = pytest.mark.django_db

API = "/api/v1/registry"


@pytest.fixture
def approver(make_key: Any) -> Any:
    return make_key("approver", name="approver")[0]


def test_reading_needs_a_role_and_deciding_needs_approver(make_key: Any, approver: Any) -> None:
    mv = force_status(version(), VersionStatus.GATES_PASSED)
    reviewer = make_key("reviewer")[0]
    assert reviewer.get(f"{API}/versions").status_code == 200
    refused = reviewer.post(f"{API}/versions/{mv.pk}/approve", {"comment": "ok"}, format="json")
    assert refused.status_code == 403 and refused.json()["error"]["code"]
    assert ModelVersion.objects.get(pk=mv.pk).status == VersionStatus.GATES_PASSED
    assert make_key("ingest")[0].get(f"{API}/versions").status_code == 403
    ok = approver.post(f"{API}/versions/{mv.pk}/approve", {"comment": "ok"}, format="json")
    assert ok.status_code == 200 and ok.json()["status"] == "approved"
    assert ok.json()["approvals"][0]["decision"] == "approved"


def test_register_from_a_training_run_is_idempotent(make_key: Any) -> None:
    orchestrator = make_key("ml_orchestrator")[0]
    run = TrainingRun.objects.create(backend="lora", base_model="/models/tiny-base", status="succeeded",
                                     artifact_path="/a/run")
    first = orchestrator.post(f"{API}/versions", {"training_run": run.pk}, format="json")
    again = orchestrator.post(f"{API}/versions", {"training_run": run.pk}, format="json")
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"] and first.json()["name"] == "ftops-tiny-base-v1.0.0"
    assert first.json()["lineage"]["training_run"]["id"] == run.pk
    missing = orchestrator.post(f"{API}/versions", {"training_run": 99999}, format="json")
    assert missing.status_code == 404 and ModelVersion.objects.count() == 1


def test_promote_rollback_and_the_timeline(approver: Any) -> None:
    v1, v2 = approved(), approved(artifact_path="/a/2")
    assert approver.post(f"{API}/versions/{v1.pk}/promote", {}, format="json").status_code == 200
    stale = approver.post(f"{API}/versions/{v2.pk}/promote", {"replaces": None}, format="json")
    assert stale.status_code == 409 and "changed meanwhile" in stale.json()["error"]["message"]
    swapped = approver.post(f"{API}/versions/{v2.pk}/promote", {"replaces": v1.pk, "reason": "better"},
                            format="json")
    assert swapped.status_code == 200 and swapped.json()["status"] == "production"
    back = approver.post(f"{API}/scopes/enterprise/rollback", {"reason": "errors"}, format="json")
    assert back.status_code == 200 and back.json()["id"] == v1.pk
    events = approver.get(f"{API}/versions/{v2.pk}/events").json()["results"]
    assert [e["kind"] for e in events] == ["registered", "approved", "promoted", "rolled_back"]
    deployments = approver.get(f"{API}/deployments", {"active": "true"}).json()["results"]
    assert [(d["scope"], d["model_version"]) for d in deployments] == [("enterprise", v1.pk)]
    again = approver.post(f"{API}/versions/{v2.pk}/promote", {}, format="json")
    assert again.status_code == 409 and "new approval" in again.json()["error"]["message"]


def test_bad_input_is_a_4xx_and_changes_nothing(approver: Any) -> None:
    mv = force_status(version(), VersionStatus.GATES_BLOCKED)
    assert approver.post(f"{API}/versions/{mv.pk}/reject", {}, format="json").status_code == 422
    no_reason = approver.post(f"{API}/versions/{mv.pk}/approve", {"comment": "fine"}, format="json")
    assert no_reason.status_code == 422 and "override_justification" in no_reason.json()["error"]["fields"]
    assert approver.post(f"{API}/versions/{mv.pk}/override", {}, format="json").status_code == 422
    assert approver.post(f"{API}/versions/{mv.pk}/promote", {"scope": "nope"}, format="json").status_code == 422
    assert approver.post(f"{API}/versions/424242/promote", {}, format="json").status_code == 404
    huge = 10**30  # no integer column holds it: still a plain 404
    assert approver.get(f"{API}/versions/{huge}").status_code == 404
    assert approver.post(f"{API}/versions/{huge}/approve", {}, format="json").status_code == 404
    assert approver.get(f"{API}/examples/{huge}/versions").status_code == 200
    assert approver.post(f"{API}/scopes/enterprise/rollback", {"reason": "x"}, format="json").status_code == 404
    assert approver.get(f"{API}/versions/{mv.pk}/gates").status_code == 404
    assert ModelVersion.objects.get(pk=mv.pk).status == VersionStatus.GATES_BLOCKED
    assert not Deployment.objects.exists()
    overridden = approver.post(f"{API}/versions/{mv.pk}/override", {"justification": "known flaky latency"},
                               format="json")
    assert overridden.status_code == 200 and overridden.json()["approvals"][0]["override"] is True


def test_canary_endpoints(approver: Any, make_key: Any) -> None:
    gateway = make_key("ml_orchestrator")[0]
    live, candidate = approved(), approved(artifact_path="/a/2")
    approver.post(f"{API}/versions/{live.pk}/promote", {}, format="json")
    started = approver.post(f"{API}/versions/{candidate.pk}/canary", {}, format="json")
    assert started.status_code == 201 and started.json()["state"] == "canary"
    assert gateway.post(f"{API}/versions/{candidate.pk}/canary", {}, format="json").status_code == 403
    promoted = gateway.post(f"{API}/versions/{candidate.pk}/canary/promote", {}, format="json")
    assert promoted.status_code == 200 and promoted.json()["status"] == "production"
    assert Deployment.objects.get(state=DeploymentState.PRODUCTION).model_version_id == candidate.pk


def test_critical_scenarios_and_summary(approver: Any) -> None:
    from ftops.catalog.models import Service

    Service.objects.create(name="payments")
    made = approver.post(f"{API}/critical-scenarios", {"record_id": "case-7", "service": "payments"}, format="json")
    assert made.status_code == 201
    assert [s["record_id"] for s in approver.get(f"{API}/critical-scenarios").json()["results"]] == ["case-7"]
    assert approver.post(f"{API}/critical-scenarios", {"record_id": "x", "service": "nope"},
                         format="json").status_code == 422
    assert approver.delete(f"{API}/critical-scenarios/case-7").status_code == 204
    assert approver.delete(f"{API}/critical-scenarios/case-7").status_code == 404
    waiting = force_status(version(), VersionStatus.GATES_PASSED)
    summary = approver.get(f"{API}/summary").json()
    assert [v["id"] for v in summary["awaiting_approval"]] == [waiting.pk] and summary["production"] == {}
