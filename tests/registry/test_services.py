"""Registry services: registration and semver, transitions, approval, promotion, rollback, canary."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import IntegrityError, transaction

from ftops.common.actors import Actor
from ftops.common.errors import Conflict, Forbidden, ValidationFailed
from ftops.common.models import AuditEvent
from ftops.training.models import TrainingRun
from registry import services
from registry.models import (
    Approval,
    Deployment,
    DeploymentState,
    ModelVersion,
    ModelVersionEvent,
    SemverBump,
    VersionStatus,
)
from registry.selectors import production_by_scope, registry_summary
from tests.registry.factories import APPROVER, CREATOR, SECOND_APPROVER, approved, force_status, version

pytestmark = pytest.mark.django_db


@pytest.fixture
def notes(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(services, "_notify", lambda **kw: sent.append(kw))
    return sent


def test_registration_names_the_version_and_counts_semver_in_its_family() -> None:
    first = version()
    second = version(artifact_path="/a/lora2")
    other = version(base="gpt-4o-mini", backend="openai", artifact_path="ft:gpt-4o-mini:acme::x1")
    assert (first.name, first.semver, first.semver_bump) == ("ftops-tiny-base-v1.0.0", "1.0.0", SemverBump.INITIAL)
    assert (second.name, second.semver_bump, second.predecessor) == ("ftops-tiny-base-v1.0.1", SemverBump.PATCH,
                                                                     first)
    assert other.name == "ftops-gpt-4o-mini-v1.0.0"
    assert first.serving == {"kind": "hf_lora", "base_model": "/models/tiny-base", "adapter_path": "/a/lora"}
    assert other.serving == {"kind": "openai", "model": "ft:gpt-4o-mini:acme::x1", "credential": "openai",
                             "base_model": "gpt-4o-mini"}
    assert len(first.artifact_sha256) == 64 and first.status == VersionStatus.REGISTERED
    assert list(ModelVersionEvent.objects.filter(model_version=first).values_list("kind", flat=True)) == [
        "registered"]
    assert AuditEvent.objects.filter(action="model_version.registered").count() == 3


def test_registration_refuses_bad_input_and_creates_nothing() -> None:
    with pytest.raises(ValidationFailed, match="unknown backend"):
        version(backend="magic")
    with pytest.raises(ValidationFailed, match="unknown service"):
        version(scope="nope")
    with pytest.raises(ValidationFailed, match=r"MAJOR\.MINOR\.PATCH"):
        version(semver="v2")
    assert ModelVersion.objects.count() == 0


def test_semver_bump_follows_the_catalog_schema_diff() -> None:
    from ftops.catalog.models import SchemaChange, Service, Tool, ToolSchemaVersion

    service = Service.objects.create(name="payments")
    tool = Tool.objects.create(service=service, name="create_payment")
    for number, change in ((1, SchemaChange.INITIAL), (2, SchemaChange.ADDITIVE), (3, SchemaChange.BREAKING)):
        ToolSchemaVersion.objects.create(tool=tool, number=number, parameters={"type": "object"},
                                         content_hash=str(number), change=change)
    base = {"payments/create_payment": 1}
    assert services.classify_change(base, dict(base))[0] == SemverBump.PATCH
    assert services.classify_change(base, {**base, "payments/refund": 1})[0] == SemverBump.MINOR
    assert services.classify_change(base, {"payments/create_payment": 2})[0] == SemverBump.MINOR
    bump, reason = services.classify_change(base, {"payments/create_payment": 3})
    assert (bump, reason["breaking"]) == (SemverBump.MAJOR, ["payments/create_payment"])
    assert services.classify_change(base, {})[0] == SemverBump.MAJOR


def test_register_for_run_is_idempotent_and_reads_the_run() -> None:
    run = TrainingRun.objects.create(backend="lora", base_model="/models/tiny-base", status="succeeded",
                                     artifact_path="/a/run-1", metrics={"seconds": 12.5}, created_by="carol",
                                     config={"device": "cpu", "seed": 7})
    first = services.model_version_register_for_run(training_run_id=run.pk)
    again = services.model_version_register_for_run(training_run_id=run.pk)
    assert first == again and ModelVersion.objects.count() == 1
    assert first.cost == {"cpu_seconds": 12.5} and first.serving["adapter_path"] == "/a/run-1"
    failed = TrainingRun.objects.create(backend="lora", base_model="b", status="failed")
    with pytest.raises(Conflict, match="only a succeeded run"):
        services.model_version_register_for_run(training_run_id=failed.pk)


def test_registration_task_by_name_registers_once(django_capture_on_commit_callbacks: Any) -> None:
    from celery import current_app

    run = TrainingRun.objects.create(backend="fewshot", base_model="/m/base", status="succeeded",
                                     artifact_path="", artifact={"prompt": "Amounts are in cents."})
    for _ in range(2):
        current_app.signature("registry.tasks.model_version_register_for_run",
                              kwargs={"training_run_id": run.pk}).delay()
    mv = ModelVersion.objects.get(training_run=run)
    assert mv.serving == {"kind": "fewshot", "prompt": "Amounts are in cents.",
                          "base": {"kind": "hf_local", "model_path": "/m/base"}}


def test_transitions_are_checked_against_the_locked_row() -> None:
    mv = version()
    with pytest.raises(Conflict, match="registered; it cannot become approved"):
        services.model_version_approve(model_version_id=mv.pk, by=APPROVER, comment="ok")
    assert ModelVersion.objects.get(pk=mv.pk).status == VersionStatus.REGISTERED
    assert not Approval.objects.exists()


def test_two_person_rule_refuses_the_creator_and_the_run_starter() -> None:
    run = TrainingRun.objects.create(backend="lora", base_model="/models/tiny-base", status="succeeded",
                                     artifact_path="/a/r", created_by="dave")
    mv = force_status(version(training_run=run), VersionStatus.GATES_PASSED)
    for who in (CREATOR, Actor(label="dave"), Actor(label="DAVE")):
        with pytest.raises(Forbidden, match="two-person rule"):
            services.model_version_approve(model_version_id=mv.pk, by=who, comment="mine")
    assert ModelVersion.objects.get(pk=mv.pk).status == VersionStatus.GATES_PASSED
    assert AuditEvent.objects.filter(action="model_version.approval_refused").count() == 3
    services.model_version_approve(model_version_id=mv.pk, by=APPROVER, comment="fine")
    assert ModelVersion.objects.get(pk=mv.pk).status == VersionStatus.APPROVED


def test_override_of_failed_gates_needs_a_justification_and_tells_the_admins(notes: list[dict[str, Any]]) -> None:
    mv = force_status(version(), VersionStatus.GATES_BLOCKED)
    with pytest.raises(ValidationFailed, match="justification"):
        services.model_version_approve(model_version_id=mv.pk, by=APPROVER, comment="ship it")
    assert ModelVersion.objects.get(pk=mv.pk).status == VersionStatus.GATES_BLOCKED and notes == []
    services.model_version_approve(model_version_id=mv.pk, by=APPROVER, comment="",
                                   override_justification="latency gate is noise on CPU")
    approval = Approval.objects.get()
    assert (approval.override, approval.justification) == (True, "latency gate is noise on CPU")
    assert [n["audience"] for n in notes] == ["admins"]
    assert AuditEvent.objects.filter(action="model_version.gate_overridden").count() == 1


def test_reject_needs_a_comment() -> None:
    mv = force_status(version(), VersionStatus.GATES_PASSED)
    with pytest.raises(ValidationFailed):
        services.model_version_reject(model_version_id=mv.pk, by=APPROVER, comment=" ")
    services.model_version_reject(model_version_id=mv.pk, by=APPROVER, comment="too slow")
    assert ModelVersion.objects.get(pk=mv.pk).status == VersionStatus.REJECTED


def test_promotion_replaces_production_and_rollback_restores_it() -> None:
    v1, v2 = approved(), approved(artifact_path="/a/2")
    services.model_version_promote(model_version_id=v1.pk, by=APPROVER)
    services.model_version_promote(model_version_id=v2.pk, by=APPROVER, reason="better")
    assert production_by_scope() == {"enterprise": v2}
    assert ModelVersion.objects.get(pk=v1.pk).status == VersionStatus.RETIRED
    restored = services.deployment_rollback(scope="enterprise", by=SECOND_APPROVER, reason="errors spiked")
    assert restored == v1 and production_by_scope() == {"enterprise": v1}
    assert (ModelVersion.objects.get(pk=v1.pk).status, ModelVersion.objects.get(pk=v2.pk).status) == (
        VersionStatus.PRODUCTION, VersionStatus.ROLLED_BACK)
    with pytest.raises(Conflict, match="needs a new approval"):
        services.model_version_promote(model_version_id=v2.pk, by=APPROVER)
    services.model_version_approve(model_version_id=v2.pk, by=SECOND_APPROVER, comment="fixed upstream")
    services.model_version_promote(model_version_id=v2.pk, by=APPROVER)
    assert production_by_scope() == {"enterprise": v2}
    kinds = list(ModelVersionEvent.objects.filter(model_version=v2).values_list("kind", flat=True))
    assert kinds == ["registered", "approved", "promoted", "rolled_back", "approved", "promoted"]


def test_rollback_without_a_previous_version_is_refused() -> None:
    v1 = approved()
    services.model_version_promote(model_version_id=v1.pk, by=APPROVER)
    with pytest.raises(Conflict, match="no previous"):
        services.deployment_rollback(scope="enterprise", by=APPROVER, reason="x")
    assert production_by_scope() == {"enterprise": v1}


def test_compare_and_swap_promotion_refuses_a_stale_view() -> None:
    v1, v2 = approved(), approved(artifact_path="/a/2")
    services.model_version_promote(model_version_id=v1.pk, by=APPROVER, expected_current=None)
    with pytest.raises(Conflict, match="changed meanwhile"):
        services.model_version_promote(model_version_id=v2.pk, by=APPROVER, expected_current=None)
    assert production_by_scope() == {"enterprise": v1}


def test_the_database_allows_one_production_deployment_per_scope() -> None:
    v1, v2 = approved(), approved(artifact_path="/a/2")
    Deployment.objects.create(model_version=v1, scope="enterprise", state=DeploymentState.PRODUCTION)
    with pytest.raises(IntegrityError), transaction.atomic():
        Deployment.objects.create(model_version=v2, scope="enterprise", state=DeploymentState.PRODUCTION)
    Deployment.objects.create(model_version=v2, scope="payments", state=DeploymentState.PRODUCTION)
    assert Deployment.objects.filter(state=DeploymentState.PRODUCTION).count() == 2


def test_canary_start_promote_and_rollback() -> None:
    v1, v2 = approved(), approved(artifact_path="/a/2")
    services.model_version_promote(model_version_id=v1.pk, by=APPROVER)
    services.canary_start(model_version_id=v2.pk, by=APPROVER)
    assert ModelVersion.objects.get(pk=v2.pk).status == VersionStatus.CANARY
    with pytest.raises(Conflict, match="already has a canary"):
        services.canary_start(model_version_id=v1.pk, by=APPROVER)
    services.canary_promote(model_version_id=v2.pk, by=Actor.system("gateway"))
    assert production_by_scope() == {"enterprise": v2}
    v3 = approved(artifact_path="/a/3")
    services.canary_start(model_version_id=v3.pk, by=APPROVER)
    services.canary_rollback(model_version_id=v3.pk, by=Actor.system("gateway"), reason="p95 too high")
    assert ModelVersion.objects.get(pk=v3.pk).status == VersionStatus.ROLLED_BACK
    assert production_by_scope() == {"enterprise": v2}


def test_summary_lists_versions_awaiting_approval_and_production() -> None:
    waiting = force_status(version(), VersionStatus.GATES_PASSED)
    live = approved(artifact_path="/a/2")
    services.model_version_promote(model_version_id=live.pk, by=APPROVER)
    summary = registry_summary()
    assert summary.awaiting_approval == [waiting] and summary.production == {"enterprise": live}


def test_the_family_name_does_not_repeat_the_enterprise(settings: Any) -> None:
    assert version(base="/var/models/ftops-tiny-base").name == "ftops-tiny-base-v1.0.0"
    settings.FTOPS_ENTERPRISE_NAME = "Acme Corp"
    assert version(base="meta-llama/Llama-3.1-8B").name == "acme-corp-llama-3-1-8b-v1.0.0"


def test_a_constrained_serving_config_is_evaluated_constrained() -> None:
    lora = {"kind": "hf_lora", "base_model": "/m/base", "adapter_path": "/a/lora", "constrained": True}
    assert services.adapter_config_for_serving(lora) == {"kind": "hf_local", "model_path": "/m/base",
                                                         "adapter_path": "/a/lora", "constrained": True}
    openai = {"kind": "openai", "credential": "oa", "model": "ft:x", "constrained": True}
    assert services.adapter_config_for_serving(openai)["constrained"] is True
    fewshot = {"kind": "fewshot", "prompt": "p", "base": {"kind": "openai", "credential": "oa", "model": "m"},
               "constrained": True}
    assert services.adapter_config_for_serving(fewshot)["inner"]["constrained"] is True
    assert "constrained" not in services.adapter_config_for_serving({**lora, "constrained": False})


def test_a_free_decoding_run_does_not_stand_for_a_constrained_version() -> None:
    from ftops.evaluation.models import EvalRun
    from ftops.evaluation.services import eval_suite_for_dataset
    from tests.evaluation.factories import dataset_version
    from tests.registry.factories import finished_run

    suite = eval_suite_for_dataset(dataset_version=dataset_version(), split="test")
    serving = {"kind": "hf_lora", "base_model": "/models/tiny-base", "adapter_path": "/a/lora", "constrained": True}
    mv = version(serving=serving, dataset_version=suite.dataset_version)
    free = finished_run(suite, exact=90.0, n=10)
    base = finished_run(suite, exact=10.0, n=10)
    as_served = {"kind": "hf_local", "model_path": "/models/tiny-base", "adapter_path": "/a/lora"}
    EvalRun.objects.filter(pk=free.pk).update(adapter_config=as_served)
    EvalRun.objects.filter(pk=base.pk).update(adapter_config={"kind": "hf_local", "model_path": "/models/tiny-base"})
    with pytest.raises(ValidationFailed, match="did not score"):
        services.model_version_attach_evaluation(model_version_id=mv.pk, candidate_run_id=free.pk,
                                                 baseline_run_id=base.pk, by=CREATOR)
    constrained = finished_run(suite, exact=90.0, n=10)
    EvalRun.objects.filter(pk=constrained.pk).update(adapter_config={**as_served, "constrained": True})
    attached = services.model_version_attach_evaluation(model_version_id=mv.pk, candidate_run_id=constrained.pk,
                                                        baseline_run_id=base.pk, by=CREATOR)
    assert attached.eval_run_id == constrained.pk
