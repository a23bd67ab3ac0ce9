"""Reads for the registry: versions, lineage, gates, deployments, the dashboard summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import Prefetch, QuerySet

from ftops.common.errors import NotFound
from registry.models import (
    ENTERPRISE_SCOPE,
    Approval,
    CriticalScenario,
    Deployment,
    DeploymentState,
    GateCheck,
    GateReport,
    ModelVersion,
    ModelVersionEvent,
    VersionStatus,
)

AWAITING_APPROVAL = (VersionStatus.GATES_PASSED, VersionStatus.GATES_BLOCKED)


def model_versions_list(*, status: str | None = None, scope: str | None = None,
                        family: str | None = None) -> QuerySet[ModelVersion]:
    qs = ModelVersion.objects.select_related("training_run", "dataset_version", "predecessor")
    if status:
        qs = qs.filter(status=status)
    if scope:
        qs = qs.filter(scope=scope)
    if family:
        qs = qs.filter(family=family)
    return qs.order_by("-created_at", "-id")


BIGINT_MAX = 2**63 - 1


def model_version_get(*, model_version_id: int) -> ModelVersion:
    if not 0 < model_version_id <= BIGINT_MAX:  # no column holds it: the same 404, not a 500
        raise NotFound(f"model version {model_version_id} does not exist")
    version = (ModelVersion.objects.select_related("training_run", "dataset_version", "predecessor", "eval_run",
                                                   "baseline_eval_run")
               .filter(pk=model_version_id).first())
    if version is None:
        raise NotFound(f"model version {model_version_id} does not exist")
    return version


def model_version_get_by_name(*, name: str) -> ModelVersion:
    """By id ("12") or human name ("acme-tiny-v1.2.0"): what the CLI accepts."""
    if name.isdigit():
        return model_version_get(model_version_id=int(name))
    version = ModelVersion.objects.filter(name=name).first()
    if version is None:
        raise NotFound(f"no model version named {name!r}")
    return version


def model_version_for_run(*, training_run_id: int) -> ModelVersion | None:
    return ModelVersion.objects.filter(training_run_id=training_run_id).first()


def model_version_events(*, model_version: ModelVersion) -> QuerySet[ModelVersionEvent]:
    return model_version.events.order_by("at", "id")


def model_version_approvals(*, model_version: ModelVersion) -> QuerySet[Approval]:
    return model_version.approvals.order_by("-created_at", "-id")


def gate_report_latest(*, model_version: ModelVersion) -> GateReport | None:
    return (GateReport.objects.filter(model_version=model_version)
            .select_related("baseline_version", "candidate_run", "baseline_run")
            .prefetch_related(Prefetch("checks", queryset=GateCheck.objects.order_by("id")))
            .order_by("-created_at", "-id").first())


def deployments_list(*, scope: str | None = None, model_version: ModelVersion | None = None,
                     active_only: bool = False) -> QuerySet[Deployment]:
    qs = Deployment.objects.select_related("model_version", "previous", "previous__model_version")
    if scope:
        qs = qs.filter(scope=scope)
    if model_version is not None:
        qs = qs.filter(model_version=model_version)
    if active_only:
        qs = qs.filter(state__in=[DeploymentState.PRODUCTION, DeploymentState.CANARY])
    return qs.order_by("-created_at", "-id")


def production_by_scope() -> dict[str, ModelVersion]:
    """{scope: version} for every scope with a production deployment."""
    rows = Deployment.objects.filter(state=DeploymentState.PRODUCTION).select_related("model_version")
    return {d.scope: d.model_version for d in rows.order_by("scope")}


def production_version_for_scope(scope: str, *, exclude: int | None = None) -> ModelVersion | None:
    """The production version a request for ``scope`` is served by: the service's own
    deployment, else the enterprise one."""
    for candidate in ([scope, ENTERPRISE_SCOPE] if scope != ENTERPRISE_SCOPE else [ENTERPRISE_SCOPE]):
        deployment = (Deployment.objects.filter(scope=candidate, state=DeploymentState.PRODUCTION)
                      .select_related("model_version").first())
        if deployment is not None and deployment.model_version_id != exclude:
            return deployment.model_version
    return None


def serving_for_service(*, service: str) -> dict[str, Any] | None:
    """What the gateway serves for a service: its production version's serving config, and the
    canary (if any) it may split traffic to."""
    version = production_version_for_scope(service)
    if version is None:
        return None
    canary = (Deployment.objects.filter(scope__in=[service, ENTERPRISE_SCOPE], state=DeploymentState.CANARY)
              .select_related("model_version").order_by("-created_at").first())
    return {"model_version_id": version.pk, "name": version.name, "serving": version.serving,
            "canary": {"model_version_id": canary.model_version_id, "name": canary.model_version.name,
                       "serving": canary.model_version.serving, "scope": canary.scope} if canary else None}


def critical_scenarios_list(*, service: str | None = None) -> QuerySet[CriticalScenario]:
    qs = CriticalScenario.objects.all()
    if service:
        qs = qs.filter(service=service)
    return qs.order_by("service", "record_id")


def model_versions_for_example(*, example_id: int) -> QuerySet[ModelVersion]:
    """Every version whose training data held this example (lineage from the example side)."""
    if not 0 < example_id <= BIGINT_MAX:
        return ModelVersion.objects.none()
    return (ModelVersion.objects.filter(dataset_version__members__example_id=example_id,
                                        dataset_version__members__split="train")
            .distinct().order_by("-created_at", "-id"))


def lineage(*, model_version: ModelVersion) -> dict[str, Any]:
    """deployment -> version -> evaluation runs -> training run -> dataset version, as ids and labels."""
    run = model_version.training_run
    dataset = model_version.dataset_version
    return {
        "deployments": [{"id": d.pk, "scope": d.scope, "state": d.state}
                        for d in model_version.deployments.order_by("-created_at")],
        "evaluation_runs": [r for r in (model_version.eval_run_id, model_version.baseline_eval_run_id) if r],
        "training_run": {"id": run.pk, "name": run.name, "backend": run.backend, "config": run.config,
                         "seed": (run.config or {}).get("seed"), "code_version": (run.metrics or {}).get(
                             "code_version", "")} if run else None,
        "dataset_version": {"id": dataset.pk, "number": dataset.number, "content_hash": dataset.content_hash}
        if dataset else None,
        "predecessor": {"id": model_version.predecessor_id, "name": model_version.predecessor.name}
        if model_version.predecessor_id and model_version.predecessor else None,
    }


@dataclass
class RegistrySummary:
    awaiting_approval: list[ModelVersion] = field(default_factory=list)
    production: dict[str, ModelVersion] = field(default_factory=dict)
    canaries: list[Deployment] = field(default_factory=list)


def registry_summary(*, limit: int = 10) -> RegistrySummary:
    """For the home dashboard: versions awaiting approval and what is in production per scope."""
    awaiting = list(ModelVersion.objects.filter(status__in=AWAITING_APPROVAL).order_by("-created_at")[:limit])
    canaries = list(Deployment.objects.filter(state=DeploymentState.CANARY).select_related("model_version"))
    return RegistrySummary(awaiting_approval=awaiting, production=production_by_scope(), canaries=canaries)


@dataclass(frozen=True)
class MirrorRecordData:
    """What the MLflow mirror needs, without importing it (its dataclass is built from this)."""

    name: str
    version: str
    metrics: dict[str, float]
    tags: dict[str, str]
    production: bool


def mirror_record(*, model_version_id: int) -> MirrorRecordData:
    """A version as MLflow's registry sees it: the family is the registered model, the semver
    the version; numeric results are metrics, lineage ids are tags; production an alias."""
    version = model_version_get(model_version_id=model_version_id)
    results = version.eval_results or {}
    metrics: dict[str, float] = {}
    overall = results.get("overall") or {}
    for key in ("exact", "tool", "args", "values"):
        if isinstance(overall.get(key), int | float):
            metrics[f"overall_{key}"] = float(overall[key])
    for group in ("by_category", "by_service"):
        for name, row in (results.get(group) or {}).items():
            if isinstance(row, dict) and isinstance(row.get("exact"), int | float):
                metrics[f"{group[3:]}.{name}.exact"] = float(row["exact"])
    for key in ("latency_p50_ms", "latency_p95_ms", "perplexity"):
        if isinstance(results.get(key), int | float):
            metrics[key] = float(results[key])
    tags = {"ftops.model_version_id": str(version.pk), "ftops.status": version.status, "ftops.scope": version.scope,
            "ftops.backend": version.backend, "ftops.base_model": version.base_model,
            "ftops.artifact_sha256": version.artifact_sha256, "ftops.semver_bump": version.semver_bump}
    if version.training_run_id:
        tags["ftops.training_run_id"] = str(version.training_run_id)
    if version.dataset_version is not None:
        tags["ftops.dataset_version"] = str(version.dataset_version.number)
        tags["ftops.dataset_hash"] = version.dataset_version.content_hash
    if results.get("test_suite_version"):
        tags["ftops.test_suite_version"] = str(results["test_suite_version"])
    production = Deployment.objects.filter(model_version=version, state=DeploymentState.PRODUCTION).exists()
    return MirrorRecordData(name=version.family, version=version.semver, metrics=metrics, tags=tags,
                            production=production)
