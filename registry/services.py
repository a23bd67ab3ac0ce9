"""Writes for the registry: register, evaluate, gate, approve, promote, roll back, canary.

Every status change is one function here that, in one transaction, locks the version row
(``select_for_update``), checks the transition is allowed from the status it finds (not the
one the caller saw), writes the new status, a ``ModelVersionEvent`` (the timeline) and an
audit row. Two approvers clicking at once therefore serialise on the row lock and the second
gets a 409 that names the status the first one left.

Production per scope is guarded by the database (``uniq_production_per_scope``): a promotion
retires the current production deployment with a conditional UPDATE and inserts its own; of
two racing promotions exactly one insert commits, the other's UPDATE finds nothing or its
insert violates the index, and it answers 409.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from ftops.common.actors import Actor
from ftops.common.errors import Conflict, Forbidden, NotFound, ValidationFailed
from ftops.common.models import AuditAction
from ftops.common.services import audit_record
from registry.models import (
    ENTERPRISE_SCOPE,
    Approval,
    ApprovalDecision,
    Backend,
    CriticalScenario,
    Deployment,
    DeploymentState,
    GateReport,
    ModelVersion,
    ModelVersionEvent,
    ReleaseDecision,
    SemverBump,
    VersionStatus,
)
from registry.serving import on_commit_adapter_load

log = logging.getLogger(__name__)

SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
S = VersionStatus

# Which status each transition may start from. Re-running an evaluation or the gates is
# allowed until a decision is taken; a rolled-back version needs a new approval (from
# rolled_back straight to approved) before it may serve again.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    S.EVALUATED: (S.REGISTERED, S.EVALUATED, S.GATES_PASSED, S.GATES_BLOCKED),
    S.GATES_PASSED: (S.EVALUATED, S.GATES_PASSED, S.GATES_BLOCKED),
    S.GATES_BLOCKED: (S.EVALUATED, S.GATES_PASSED, S.GATES_BLOCKED),
    S.APPROVED: (S.GATES_PASSED, S.GATES_BLOCKED, S.ROLLED_BACK),
    S.REJECTED: (S.REGISTERED, S.EVALUATED, S.GATES_PASSED, S.GATES_BLOCKED, S.APPROVED, S.ROLLED_BACK),
    S.CANARY: (S.APPROVED, S.PRODUCTION),
    S.PRODUCTION: (S.APPROVED, S.CANARY, S.PRODUCTION, S.RETIRED),
    S.RETIRED: (S.PRODUCTION,),
    S.ROLLED_BACK: (S.PRODUCTION, S.CANARY),
}


# --------------------------------------------------------------------------- helpers


BIGINT_MAX = 2**63 - 1


def _versions(model_version_id: int) -> Any:
    """The version's row as a queryset; an id no column can hold finds nothing (not a 500)."""
    if not 0 < model_version_id <= BIGINT_MAX:
        return ModelVersion.objects.none()
    return ModelVersion.objects.filter(pk=model_version_id)


def _lock(model_version_id: int) -> ModelVersion:
    version = _versions(model_version_id).select_for_update().first()
    if version is None:
        raise NotFound(f"model version {model_version_id} does not exist")
    return version


def _event(version: ModelVersion, *, kind: str, by: Actor, reason: str = "", from_status: str = "",
           to_status: str = "", scope: str = "", detail: dict[str, Any] | None = None) -> ModelVersionEvent:
    return ModelVersionEvent.objects.create(
        model_version=version, kind=kind, from_status=from_status, to_status=to_status, scope=scope,
        reason=reason, actor=by.label, detail=detail or {})


def _transition(version: ModelVersion, to: str, *, by: Actor, kind: str, reason: str,
                action: AuditAction, scope: str = "", detail: dict[str, Any] | None = None) -> ModelVersion:
    """Move a LOCKED version to ``to``; refuses (409) when its current status does not allow it."""
    allowed = TRANSITIONS[to]
    if version.status not in allowed:
        raise Conflict(f"{version.name} is {version.status}; it cannot become {to} "
                       f"(only from {', '.join(allowed)})", fields={"status": [version.status]})
    before = version.status
    version.status = to
    version.save(update_fields=["status", "updated_at"])
    _event(version, kind=kind, by=by, reason=reason, from_status=before, to_status=to, scope=scope, detail=detail)
    audit_record(action=action, by=by, object_type="model_version", object_id=version.pk,
                 detail={"name": version.name, "from": before, "to": to, "reason": reason, "scope": scope,
                         **(detail or {})})
    return version


def _on_commit_mirror(version_id: int) -> None:
    """Mirror to MLflow after commit when a tracking server is configured (ftops stays the source)."""
    if not getattr(settings, "MLFLOW_TRACKING_URI", ""):
        return

    def send() -> None:
        from celery import current_app

        current_app.signature("registry.tasks.model_version_mirror", kwargs={"model_version_id": version_id}).delay()

    transaction.on_commit(send)


def _notify(*, audience: str, subject: str, text: str, payload: dict[str, Any]) -> None:
    """Notifications go out after commit: a rolled-back decision must never have been announced."""

    def send() -> None:
        try:
            from ftops.common.notifications import notify
        except ImportError:  # TODO(notify helper): remove once ftops.common.notifications lands
            log.warning("notifications are not available; %s: %s", audience, subject)
            return
        try:
            notify(audience=audience, subject=subject, text=text, payload=payload)
        except Exception:  # a mail or webhook outage must not undo a release decision
            log.exception("notifying %s failed: %s", audience, subject)

    transaction.on_commit(send)


# --------------------------------------------------------------------------- registration


def enterprise_name() -> str:
    return slugify(str(getattr(settings, "FTOPS_ENTERPRISE_NAME", "") or "ftops")) or "ftops"


def base_slug(base_model: str) -> str:
    """A short name for a base model: the last path part of a folder or hub id, or the model id."""
    tail = base_model.rstrip("/").split("/")[-1] if base_model else "model"
    return slugify(tail.replace(".", "-"))[:80] or "model"


def family_for(*, base_model: str, scope: str = ENTERPRISE_SCOPE) -> str:
    enterprise, base = enterprise_name(), base_slug(base_model)
    # "ftops" + "ftops-tiny-base" reads as ftops-tiny-base, not ftops-ftops-tiny-base.
    family = base if base.startswith(f"{enterprise}-") else f"{enterprise}-{base}"
    return family if scope == ENTERPRISE_SCOPE else f"{family}-{slugify(scope)}"


def _parse(semver: str) -> tuple[int, int, int]:
    match = SEMVER.match(semver)
    if not match:
        return (0, 0, 0)
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def _bump(version: tuple[int, int, int], bump: str) -> str:
    major, minor, patch = version
    if bump == SemverBump.MAJOR:
        return f"{major + 1}.0.0"
    if bump == SemverBump.MINOR:
        return f"{major}.{minor + 1}.0"
    return f"{major}.{minor}.{patch + 1}"


def tool_manifest_for(dataset_version: Any) -> dict[str, int]:
    """``{"service/tool": schema version number}`` of every tool the training split names."""
    if dataset_version is None:
        return {}
    from ftops.datasets.models import DatasetMembership

    manifest: dict[str, int] = {}
    rows = DatasetMembership.objects.filter(version=dataset_version, split="train").values_list(
        "example__service__name", "example__tool_versions")
    for service, versions in rows:
        for tool, number in (versions or {}).items():
            key = f"{service}/{tool}"
            manifest[key] = max(int(number), manifest.get(key, 0))
    return manifest


def classify_change(old: dict[str, int], new: dict[str, int]) -> tuple[str, dict[str, Any]]:
    """(bump, reason) from the tool manifests of the predecessor and the new version.

    Major when a tool both were trained on moved to a schema version the catalog classified as
    breaking (or a tool was dropped, which breaks callers of the old model); minor when tools
    were added or extended additively; patch when only the data changed.
    """
    from ftops.catalog.models import SchemaChange, ToolSchemaVersion

    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    moved = {k: (old[k], new[k]) for k in sorted(set(old) & set(new)) if old[k] != new[k]}
    breaking: list[str] = []
    for key, (before, after) in moved.items():
        service, tool = key.split("/", 1)
        lo, hi = sorted((before, after))
        if ToolSchemaVersion.objects.filter(tool__service__name=service, tool__name=tool, number__gt=lo,
                                            number__lte=hi, change=SchemaChange.BREAKING).exists():
            breaking.append(key)
    reason = {"added": added, "removed": removed, "breaking": breaking,
              "changed": {k: list(v) for k, v in moved.items()}}
    if breaking or removed:
        return SemverBump.MAJOR, reason
    if added or moved:
        return SemverBump.MINOR, reason
    return SemverBump.PATCH, reason


def artifact_sha256(backend: str, artifact_path: str) -> str:
    """A LoRA folder hashes its files (names and bytes, in name order); a prompt file its bytes;
    an OpenAI model lives remotely, so its id is what is hashed."""
    digest = hashlib.sha256()
    if backend == Backend.OPENAI or not artifact_path:
        digest.update(artifact_path.encode())
        return digest.hexdigest()
    path = Path(artifact_path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if not file.exists():
            continue
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
        with file.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def serving_for(*, backend: str, base_model: str, artifact_path: str, artifact: dict[str, Any] | None = None,
                credential: str = "") -> dict[str, Any]:
    """How to serve what training produced, decided once from the backend that produced it."""
    if backend == Backend.OPENAI:
        from ftops.common.credentials import DEFAULT_OPENAI_CREDENTIAL

        return {"kind": "openai", "model": artifact_path, "credential": credential or DEFAULT_OPENAI_CREDENTIAL,
                "base_model": base_model}
    if backend == Backend.FEWSHOT:
        prompt = str((artifact or {}).get("prompt") or "")
        if not prompt and artifact_path:
            try:
                prompt = Path(artifact_path).read_text(encoding="utf-8")
            except OSError as exc:
                raise ValidationFailed(f"the prompt file {artifact_path} cannot be read: {exc}",
                                       fields={"artifact_path": ["the few-shot prompt is missing"]}) from exc
        # The prompt text is kept inline: a version must stay servable when the file moves.
        return {"kind": "fewshot", "prompt": prompt, "base": {"kind": "hf_local", "model_path": base_model}}
    return {"kind": "hf_lora", "base_model": base_model, "adapter_path": artifact_path}


def adapter_config_for_serving(serving: dict[str, Any]) -> dict[str, Any]:
    """The evaluation adapter config (``ftops.core.adapters``) for a version's serving config.

    ``"constrained": true`` goes along: the gates must score the model as the gateway serves it
    (schema-constrained decoding on the model server, strict tools on an OpenAI upstream).
    """
    kind = serving.get("kind")
    constrained = {"constrained": True} if serving.get("constrained") is True else {}
    if kind == "openai":
        return {"kind": "openai", "credential": serving["credential"], "model": serving["model"], **constrained}
    if kind == "fewshot":
        return {"kind": "fewshot", "prompt": serving["prompt"], "inner": {**dict(serving["base"]), **constrained}}
    if kind == "hf_lora":
        config: dict[str, Any] = {"kind": "hf_local", "model_path": serving["base_model"], **constrained}
        if serving.get("adapter_path"):
            config["adapter_path"] = serving["adapter_path"]
        return config
    raise ValidationFailed(f"unknown serving kind {kind!r}", fields={"serving": ["hf_lora, openai or fewshot"]})


def base_adapter_config(version: ModelVersion) -> dict[str, Any]:
    """The base model alone, served the way the version would be without what training added."""
    serving = version.serving or {}
    if serving.get("kind") == "openai":
        return {"kind": "openai", "credential": serving["credential"], "model": version.base_model}
    return {"kind": "hf_local", "model_path": version.base_model}


def model_version_adapter_config(model_version_id: int) -> tuple[dict[str, Any], str]:
    """(adapter config, label) of a version: what the evaluation app asks the registry for."""
    version = _versions(model_version_id).first()
    if version is None:
        raise NotFound(f"model version {model_version_id} does not exist")
    if not version.serving:
        raise ValidationFailed(f"model version {version.name} has no serving config",
                               fields={"model_version_id": ["register it again from its training run"]})
    return adapter_config_for_serving(version.serving), version.name


def _cost_for_run(run: Any) -> dict[str, Any]:
    metrics = run.metrics or {}
    cost: dict[str, Any] = {}
    seconds = metrics.get("seconds")
    if seconds is None and run.started_at and run.finished_at:
        seconds = (run.finished_at - run.started_at).total_seconds()
    if run.backend == Backend.OPENAI:
        cost["trained_tokens"] = metrics.get("trained_tokens")
        if metrics.get("cost_usd") is not None:
            cost["fine_tune_usd"] = metrics["cost_usd"]
    elif seconds is not None:
        device = str((run.config or {}).get("device") or "")
        key = "gpu_seconds" if device.startswith("cuda") else "cpu_seconds"
        cost[key] = round(float(seconds), 2)
    return {k: v for k, v in cost.items() if v is not None}


@transaction.atomic
def model_version_register(
    *,
    base_model: str,
    backend: str = Backend.LORA,
    artifact_path: str = "",
    serving: dict[str, Any] | None = None,
    scope: str = ENTERPRISE_SCOPE,
    training_run: Any = None,
    dataset_version: Any = None,
    metrics: dict[str, Any] | None = None,
    card: dict[str, Any] | None = None,
    cost: dict[str, Any] | None = None,
    semver: str | None = None,
    by: Actor | None = None,
) -> ModelVersion:
    """Register a version with its semantic version worked out from its predecessor.

    Idempotent per training run: a run that is registered again (a redelivered task) gets
    the version it already has. The family row of the newest version is locked while the
    number is chosen, so two registrations in one family never pick the same number.
    """
    by = by or Actor.system("registry")
    if backend not in Backend.values:
        raise ValidationFailed(f"unknown backend {backend!r}", fields={"backend": [f"one of {Backend.values}"]})
    if not base_model.strip():
        raise ValidationFailed("a base model is required", fields={"base_model": ["name the base model"]})
    if semver is not None and not SEMVER.match(semver):
        raise ValidationFailed(f"{semver!r} is not MAJOR.MINOR.PATCH", fields={"semver": ["e.g. 1.2.0"]})
    scope = scope or ENTERPRISE_SCOPE
    if scope != ENTERPRISE_SCOPE:
        from ftops.catalog.models import Service

        if not Service.objects.filter(name=scope).exists():
            raise ValidationFailed(f"unknown service {scope!r}", fields={"scope": ["'enterprise' or a service name"]})
    if training_run is not None:
        existing = ModelVersion.objects.filter(training_run=training_run).first()
        if existing is not None:
            return existing
    family = family_for(base_model=base_model, scope=scope)
    manifest = tool_manifest_for(dataset_version)
    serving = serving or serving_for(backend=backend, base_model=base_model, artifact_path=artifact_path)
    sha256 = artifact_sha256(backend, artifact_path)
    # The family's newest version is locked while the number is chosen. The very first version
    # of a family has no row to lock, so two first registrations may pick the same number: the
    # unique (family, semver) index refuses the second, which then reads again and moves on.
    for _attempt in range(3):
        predecessor = (ModelVersion.objects.select_for_update().filter(family=family)
                       .order_by("-created_at", "-id").first())
        if semver is not None:
            bump, reason = (SemverBump.INITIAL, {}) if predecessor is None else classify_change(
                predecessor.tool_manifest or {}, manifest)
            number = semver
        elif predecessor is None:
            bump, reason, number = SemverBump.INITIAL, {}, "1.0.0"
        else:
            bump, reason = classify_change(predecessor.tool_manifest or {}, manifest)
            highest = max(_parse(v) for v in ModelVersion.objects.filter(family=family).values_list("semver",
                                                                                                   flat=True))
            number = _bump(highest, bump)
        if ModelVersion.objects.filter(family=family, semver=number).exists():
            raise ValidationFailed(f"{family} {number} already exists", fields={"semver": ["already used"]})
        try:
            with transaction.atomic():
                version = ModelVersion.objects.create(
                    name=f"{family}-v{number}", family=family, semver=number, base_model=base_model,
                    backend=backend, scope=scope, artifact_path=artifact_path, artifact_sha256=sha256,
                    serving=serving, training_run=training_run, dataset_version=dataset_version,
                    predecessor=predecessor, semver_bump=bump, semver_reason=reason, tool_manifest=manifest,
                    metrics=metrics or {}, card=card or {}, cost=cost or {}, created_by=by.label[:200],
                )
            break
        except IntegrityError:
            if training_run is not None:
                # Another delivery registered this run between our check and insert.
                existing = ModelVersion.objects.filter(training_run=training_run).first()
                if existing is not None:
                    return existing
            if semver is not None:
                raise ValidationFailed(f"{family} {number} already exists", fields={"semver": ["already used"]}) \
                    from None
    else:
        raise Conflict(f"could not choose a version number in {family}; try again")
    _event(version, kind="registered", by=by, to_status=S.REGISTERED, scope=scope,
           reason=f"{bump} from {predecessor.name}" if predecessor else "first version of the family",
           detail={"semver_reason": reason})
    audit_record(action=AuditAction.MODEL_VERSION_REGISTERED, by=by, object_type="model_version",
                 object_id=version.pk, detail={"name": version.name, "backend": backend, "scope": scope,
                                               "training_run": getattr(training_run, "pk", None)})
    _on_commit_mirror(version.pk)
    return version


def model_version_register_for_run(*, training_run_id: int, by: Actor | None = None) -> ModelVersion:
    """Register what a succeeded training run produced (idempotent: a run has one version)."""
    from ftops.training.models import RunStatus, TrainingRun

    run = TrainingRun.objects.select_related("dataset_version").filter(pk=training_run_id).first()
    if run is None:
        raise NotFound(f"training run {training_run_id} does not exist")
    if run.status != RunStatus.SUCCEEDED:
        raise Conflict(f"training run {training_run_id} is {run.status}; only a succeeded run is registered")
    existing = ModelVersion.objects.filter(training_run=run).first()
    if existing is not None:
        return existing
    backend = str(run.backend)
    model_ref = str((run.artifact or {}).get("fine_tuned_model") or run.artifact_path or "")
    if backend == Backend.FEWSHOT and run.artifact_path:
        model_ref = run.artifact_path
    serving = serving_for(backend=backend, base_model=run.base_model, artifact_path=model_ref,
                          artifact=run.artifact, credential=str((run.config or {}).get("credential") or ""))
    return model_version_register(
        base_model=run.base_model, backend=backend, artifact_path=model_ref, serving=serving,
        scope=run.service or ENTERPRISE_SCOPE, training_run=run, dataset_version=run.dataset_version,
        metrics=run.metrics or {}, card={"dataset_version": str(run.dataset_version.number)
                                          if run.dataset_version else "", **(_card_of(run))},
        cost=_cost_for_run(run), by=by or Actor.system(f"training run {run.pk}"),
    )


def _card_of(run: Any) -> dict[str, Any]:
    """The model card a run's artifact folder holds, when it has one (LoRA writes it)."""
    import json

    path = Path(run.artifact_path or "")
    for name in ("ftops_card.json", "model_card.json"):
        candidate = path / name
        if path.is_dir() and candidate.is_file():
            try:
                data = json.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return {}
            return data if isinstance(data, dict) else {}
    # Few-shot and OpenAI runs keep no card file: the run row holds what their cards said.
    kinds = {Backend.LORA: "lora-adapter", Backend.FEWSHOT: "few-shot-prompt", Backend.OPENAI: "openai-fine-tune"}
    card: dict[str, Any] = {"kind": kinds.get(run.backend, run.backend), "base_model": run.base_model,
                            "config": run.config or {}, "seed": (run.config or {}).get("seed"),
                            "metrics": run.metrics or {}}
    if run.backend == Backend.OPENAI:
        card.update({k: v for k, v in (run.artifact or {}).items() if k in ("job_id", "fine_tuned_model")})
    return card


# --------------------------------------------------------------------------- evaluation


@transaction.atomic
def model_version_evaluate(*, model_version_id: int, by: Actor, split: str = "test",
                           enqueue: bool = True) -> ModelVersion:
    """Start the candidate's evaluation and its baseline's on the same frozen split.

    The baseline is the production version of the same scope, or the base model when none
    is in production; an earlier finished run of the baseline on this very suite is reused.
    The registry builds both adapter configs from ``serving`` and hands them to the
    evaluation app; a registry task runs them and writes the results back.
    """
    from ftops.evaluation.models import EvalRun
    from ftops.evaluation.models import RunStatus as EvalStatus
    from ftops.evaluation.services import eval_run_create, eval_suite_for_dataset
    from registry.selectors import production_version_for_scope

    version = _lock(model_version_id)
    if version.status not in TRANSITIONS[S.EVALUATED]:
        raise Conflict(f"{version.name} is {version.status}; it is evaluated before a decision only")
    if version.dataset_version is None:
        raise ValidationFailed(f"{version.name} has no dataset version to evaluate on",
                               fields={"model_version_id": ["register it from a training run"]})
    suite = eval_suite_for_dataset(dataset_version=version.dataset_version, split=split)
    candidate = eval_run_create(suite=suite, adapter_config=adapter_config_for_serving(version.serving),
                                name=f"{version.name} on {suite.name}", by=by, enqueue=False)
    EvalRun.objects.filter(pk=candidate.pk).update(model_version_id=version.pk, model_label=version.name[:200])
    production = production_version_for_scope(version.scope, exclude=version.pk)
    baseline_run = None
    if production is not None:
        baseline_run = EvalRun.objects.filter(suite=suite, model_version_id=production.pk,
                                              status=EvalStatus.SUCCEEDED).order_by("-finished_at").first()
        if baseline_run is None:
            baseline_run = eval_run_create(suite=suite, adapter_config=adapter_config_for_serving(production.serving),
                                           name=f"{production.name} (production) on {suite.name}", by=by,
                                           enqueue=False)
            EvalRun.objects.filter(pk=baseline_run.pk).update(model_version_id=production.pk,
                                                              model_label=production.name[:200])
    else:
        config = base_adapter_config(version)
        baseline_run = EvalRun.objects.filter(suite=suite, model_version_id__isnull=True, adapter_config=config,
                                              status=EvalStatus.SUCCEEDED).order_by("-finished_at").first()
        if baseline_run is None:
            baseline_run = eval_run_create(suite=suite, adapter_config=config,
                                           name=f"base model {version.base_model} on {suite.name}", by=by,
                                           enqueue=False)
    version.eval_run_id = candidate.pk
    version.baseline_eval_run_id = baseline_run.pk
    version.save(update_fields=["eval_run", "baseline_eval_run", "updated_at"])
    _event(version, kind="evaluation_requested", by=by, detail={"suite": suite.name, "candidate_run": candidate.pk,
                                                                "baseline_run": baseline_run.pk,
                                                                "baseline": production.name if production else
                                                                f"base model {version.base_model}"})
    audit_record(action=AuditAction.MODEL_VERSION_EVALUATION_REQUESTED, by=by, object_type="model_version",
                 object_id=version.pk, detail={"suite": suite.name, "candidate_run": candidate.pk,
                                               "baseline_run": baseline_run.pk})
    if enqueue:
        version_id = version.pk
        transaction.on_commit(lambda: _send("registry.tasks.model_version_evaluation_run",
                                            {"model_version_id": version_id}, queue="evaluation"))
    return version


SERVING_KEYS = ("kind", "model_path", "adapter_path", "model", "credential", "prompt")


def _same_model(config: dict[str, Any], expected: dict[str, Any]) -> bool:
    """Two adapter configs name the same model (batch size and token limits aside)."""
    return _identity(config) == _identity(expected)


def _identity(config: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {k: config.get(k) for k in SERVING_KEYS}
    # Constrained decoding changes the answers, so a free-decoding run is not the served model's.
    found["constrained"] = config.get("constrained") is True
    if isinstance(config.get("inner"), dict):
        found["inner"] = _identity(config["inner"])
    return found


def model_version_attach_evaluation(*, model_version_id: int, candidate_run_id: int, baseline_run_id: int,
                                    by: Actor) -> ModelVersion:
    """Use evaluation runs that already exist (the demo's base-vs-tuned runs) instead of running
    the models again: the candidate run must have scored this version's model and the baseline
    the base model or the production version, both on the same suite."""
    from ftops.evaluation.models import EvalRun
    from registry.selectors import production_version_for_scope

    with transaction.atomic():
        version = _lock(model_version_id)
        if version.status not in TRANSITIONS[S.EVALUATED]:
            raise Conflict(f"{version.name} is {version.status}; it is evaluated before a decision only")
        candidate = EvalRun.objects.filter(pk=candidate_run_id).first()
        baseline = EvalRun.objects.filter(pk=baseline_run_id).first()
        if candidate is None or baseline is None:
            raise NotFound("evaluation run not found", fields={"run": [str(candidate_run_id), str(baseline_run_id)]})
        if candidate.suite_id != baseline.suite_id:
            raise ValidationFailed("the two runs scored different suites", fields={"baseline_run": ["same suite"]})
        if not _same_model(candidate.adapter_config, adapter_config_for_serving(version.serving)):
            raise ValidationFailed(f"run {candidate.pk} did not score {version.name}",
                                   fields={"candidate_run": ["a run of this version's model"]})
        production = production_version_for_scope(version.scope, exclude=version.pk)
        expected = adapter_config_for_serving(production.serving) if production else base_adapter_config(version)
        if not _same_model(baseline.adapter_config, expected):
            raise ValidationFailed(f"run {baseline.pk} did not score the baseline "
                                   f"({production.name if production else 'the base model'})",
                                   fields={"baseline_run": ["production version or base model"]})
        EvalRun.objects.filter(pk=candidate.pk).update(model_version_id=version.pk)
        version.eval_run_id, version.baseline_eval_run_id = candidate.pk, baseline.pk
        version.save(update_fields=["eval_run", "baseline_eval_run", "updated_at"])
        _event(version, kind="evaluation_attached", by=by, detail={"candidate_run": candidate.pk,
                                                                   "baseline_run": baseline.pk})
    return model_version_collect_evaluation(model_version_id=model_version_id, by=by)


def _send(name: str, kwargs: dict[str, Any], *, queue: str | None = None) -> None:
    from celery import current_app

    options = {"queue": queue} if queue else {}
    current_app.signature(name, kwargs=kwargs, **options).delay()


def model_version_evaluation_execute(*, model_version_id: int) -> ModelVersion:
    """Run the version's pending evaluation runs (a claimed run is skipped), then write back."""
    from ftops.evaluation.services import eval_run_execute

    version = _versions(model_version_id).first()
    if version is None:
        raise NotFound(f"model version {model_version_id} does not exist")
    for run_id in (version.baseline_eval_run_id, version.eval_run_id):
        if run_id is not None:
            eval_run_execute(run_id=run_id)
    return model_version_collect_evaluation(model_version_id=model_version_id)


def eval_results_from_run(run: Any) -> dict[str, Any]:
    """What a version keeps from its evaluation run (the gates read the run itself)."""
    metrics = run.metrics or {}
    latency = metrics.get("latency_ms") or {}
    tokens = metrics.get("tokens") or {}
    n = int((metrics.get("overall") or {}).get("n") or 0)
    results: dict[str, Any] = {
        "eval_run_id": run.pk,
        "test_suite": run.suite.name,
        "test_suite_version": run.suite.content_hash or (
            f"dataset v{run.suite.dataset_version.number} {run.suite.split}" if run.suite.dataset_version else ""),
        "overall": metrics.get("overall") or {},
        "by_category": metrics.get("by_category") or {},
        "by_service": metrics.get("by_service") or {},
        "by_tool": metrics.get("by_tool") or {},
        "by_dimension": metrics.get("by_dimension") or {},
        "latency_p50_ms": latency.get("p50"),
        "latency_p95_ms": latency.get("p95"),
        "perplexity": metrics.get("perplexity"),
        "parse_errors": metrics.get("parse_errors", 0),
        "tokens": tokens,
    }
    price = metrics.get("cost_usd")
    if price is not None and n:
        results["cost_per_1k_requests_usd"] = round(1000.0 * float(price) / n, 6)
    elif n and tokens:
        # No price known: tokens per 1,000 requests is what a price list multiplies.
        results["tokens_per_1k_requests"] = round(1000.0 * (tokens.get("prompt", 0) + tokens.get("completion", 0))
                                                  / n, 1)
    return results


def model_version_collect_evaluation(*, model_version_id: int, by: Actor | None = None) -> ModelVersion:
    """Write finished evaluation results back to the version and compute its gates.

    Safe to call any number of times (beat calls it for versions whose runs finished while no
    task was watching): it does nothing until both runs have finished.
    """
    from ftops.evaluation.models import EvalRun
    from ftops.evaluation.models import RunStatus as EvalStatus

    by = by or Actor.system("registry")
    with transaction.atomic():
        version = _lock(model_version_id)
        if version.eval_run_id is None or version.status not in (S.REGISTERED, S.EVALUATED):
            return version
        run = EvalRun.objects.select_related("suite", "suite__dataset_version").get(pk=version.eval_run_id)
        baseline = EvalRun.objects.filter(pk=version.baseline_eval_run_id or 0).first()
        if not run.is_finished or (baseline is not None and not baseline.is_finished):
            return version
        if run.status != EvalStatus.SUCCEEDED or (baseline is not None and baseline.status != EvalStatus.SUCCEEDED):
            failed = run if run.status != EvalStatus.SUCCEEDED else baseline
            assert failed is not None
            # Recorded once: beat looks again every minute until someone evaluates anew.
            if not version.events.filter(kind="evaluation_failed", detail__eval_run=failed.pk).exists():
                _event(version, kind="evaluation_failed", by=by, reason=failed.error or failed.status,
                       detail={"eval_run": failed.pk})
            return version
        version.eval_results = eval_results_from_run(run)
        version.save(update_fields=["eval_results", "updated_at"])
        _transition(version, S.EVALUATED, by=by, kind="evaluated", action=AuditAction.MODEL_VERSION_EVALUATED,
                    reason=f"exact {version.eval_results['overall'].get('exact')}% on {run.suite.name}",
                    detail={"eval_run": run.pk})
        _on_commit_mirror(version.pk)
    from registry.gates import model_version_gates_compute

    return model_version_gates_compute(model_version_id=model_version_id, by=by)


def model_versions_collect_evaluations() -> list[int]:
    """Beat: versions whose evaluation finished while no registry task was watching."""
    from ftops.evaluation.models import EvalRun

    collected: list[int] = []
    waiting = ModelVersion.objects.filter(status=S.REGISTERED, eval_run__isnull=False).values_list(
        "pk", "eval_run_id")
    for version_id, run_id in list(waiting):
        if EvalRun.objects.filter(pk=run_id, status="succeeded").exists():
            before = ModelVersion.objects.values_list("status", flat=True).get(pk=version_id)
            after = model_version_collect_evaluation(model_version_id=version_id).status
            if after != before:
                collected.append(version_id)
    return collected


def model_version_record_gates(*, version: ModelVersion, report: GateReport, by: Actor) -> ModelVersion:
    """Move a LOCKED version to gates_passed or gates_blocked from a stored report; approvers are
    told when it now awaits them."""
    to = S.GATES_PASSED if report.passed else S.GATES_BLOCKED
    _transition(version, to, by=by, kind="gates", action=AuditAction.MODEL_VERSION_GATES_COMPUTED,
                reason=f"{report.checks_passed} of {report.checks_total} checks passed; {report.decision}",
                detail={"gate_report": report.pk, "decision": report.decision,
                        "failing_services": report.failing_services})
    _on_commit_mirror(version.pk)
    if report.decision == ReleaseDecision.BLOCKED_CRITICAL:
        _notify(audience="admins", subject=f"CRITICAL: {version.name} fails gates for most services",
                text=f"{len(report.failing_services)} services fail their gates: "
                     f"{', '.join(report.failing_services)}. The release is blocked.",
                payload={"severity": "critical", "model_version": version.name,
                         "failing_services": report.failing_services, "pattern": report.failure_pattern})
    _notify(audience="approvers", subject=f"{version.name} awaits approval ({to.replace('_', ' ')})",
            text=f"{version.name}: {report.checks_passed}/{report.checks_total} gate checks passed "
                 f"against {report.baseline_label}. Decision: {report.decision}.",
            payload={"model_version": version.name, "model_version_id": version.pk, "status": to,
                     "decision": report.decision})
    return version


# --------------------------------------------------------------------------- approval


def _people_behind(version: ModelVersion) -> set[str]:
    """Who started the training run and who requested the release: neither may approve it."""
    people = {version.created_by}
    if version.training_run_id and version.training_run is not None:
        people.add(version.training_run.created_by)
    return {_person(p) for p in people if p and p.strip() and not p.startswith(("system", "training run"))}


def _person(label: str) -> str:
    """One person behind the web, the API and the terminal: "cli:carol" is carol."""
    label = label.strip().lower()
    return label.removeprefix("cli:")


def _identities(by: Actor) -> set[str]:
    """Every name the actor goes by: its label, and for an API key the user who created it."""
    names = {_person(by.label)}
    if by.user is not None:
        names.add(str(by.user.get_username()).lower())
    if by.api_key is not None and by.api_key.created_by is not None:
        names.add(str(by.api_key.created_by.get_username()).lower())
    return names


def latest_gate_report(version: ModelVersion) -> GateReport | None:
    return version.gate_reports.order_by("-created_at", "-id").first()


def model_version_approve(*, model_version_id: int, by: Actor, comment: str = "",
                          override_justification: str = "") -> ModelVersion:
    """Approve a version whose gates passed, or override failed gates with a justification.

    Two-person rule: whoever started the training run or the release may not approve it.
    The refusal is audited outside the approval's transaction, so it stays on record.
    An override is marked as such, audited and announced to the admins.
    """
    found = _versions(model_version_id).select_related("training_run").first()
    if found is None:
        raise NotFound(f"model version {model_version_id} does not exist")
    if _identities(by) & _people_behind(found):
        audit_record(action=AuditAction.MODEL_VERSION_APPROVAL_REFUSED, by=by, object_type="model_version",
                     object_id=found.pk, detail={"reason": "two-person rule", "name": found.name})
        raise Forbidden(f"{by.label} started the training run or the release of {found.name}; "
                        "another approver must approve it (two-person rule)")
    with transaction.atomic():
        return _approve(_lock(model_version_id), by=by, comment=comment,
                        override_justification=override_justification)


def _approve(version: ModelVersion, *, by: Actor, comment: str, override_justification: str) -> ModelVersion:
    justification = override_justification.strip()
    report = latest_gate_report(version)
    override = False
    if version.status == S.GATES_BLOCKED:
        if not justification:
            raise ValidationFailed(f"{version.name} failed its gates; overriding needs a written justification",
                                   fields={"override_justification": ["say why it may ship despite the gates"]})
        override = True
    elif version.status == S.ROLLED_BACK and not (comment.strip() or justification):
        raise ValidationFailed(f"{version.name} was rolled back; a new approval needs a comment",
                               fields={"comment": ["say why it may serve again"]})
    _transition(version, S.APPROVED, by=by, kind="override" if override else "approved",
                action=AuditAction.MODEL_VERSION_GATE_OVERRIDDEN if override else AuditAction.MODEL_VERSION_APPROVED,
                reason=justification if override else comment.strip(),
                detail={"override": override, "comment": comment.strip(),
                        "gate_report": report.pk if report else None})
    Approval.objects.create(model_version=version, decision=ApprovalDecision.APPROVED, comment=comment.strip(),
                            override=override, justification=justification, gate_report=report,
                            actor=by.label[:200], user=by.user if by.user_id else None)
    if override:
        failed = [f"{c.name} {c.subject}".strip() for c in report.checks.all() if c.blocks] if report else []
        _notify(audience="admins", subject=f"Gate override: {version.name} approved by {by.label}",
                text=f"{by.label} approved {version.name} despite failed gates ({', '.join(failed) or 'n/a'}). "
                     f"Justification: {justification}",
                payload={"model_version": version.name, "model_version_id": version.pk, "approver": by.label,
                         "justification": justification, "failed_checks": failed})
    return version


@transaction.atomic
def model_version_reject(*, model_version_id: int, by: Actor, comment: str) -> ModelVersion:
    comment = comment.strip()
    if not comment:
        raise ValidationFailed("a rejection needs a comment", fields={"comment": ["say why"]})
    version = _lock(model_version_id)
    _transition(version, S.REJECTED, by=by, kind="rejected", action=AuditAction.MODEL_VERSION_REJECTED,
                reason=comment)
    Approval.objects.create(model_version=version, decision=ApprovalDecision.REJECTED, comment=comment,
                            gate_report=latest_gate_report(version), actor=by.label[:200],
                            user=by.user if by.user_id else None)
    return version


# --------------------------------------------------------------------------- deployment


def _needs_new_approval(version: ModelVersion) -> bool:
    """A version rolled back anywhere since its latest approval may not serve again."""
    last_rollback = version.deployments.filter(state=DeploymentState.ROLLED_BACK).order_by("-ended_at").first()
    if last_rollback is None or last_rollback.ended_at is None:
        return False
    last_approval = version.approvals.filter(decision=ApprovalDecision.APPROVED).order_by("-created_at").first()
    return last_approval is None or last_approval.created_at <= last_rollback.ended_at


def _check_scope(version: ModelVersion, scope: str) -> str:
    scope = (scope or version.scope or ENTERPRISE_SCOPE).strip()
    if version.scope != ENTERPRISE_SCOPE and scope != version.scope:
        raise ValidationFailed(f"{version.name} is a per-service adapter for {version.scope}; "
                               f"it cannot serve {scope}", fields={"scope": [version.scope]})
    if scope != ENTERPRISE_SCOPE:
        from ftops.catalog.models import Service

        if not Service.objects.filter(name=scope).exists():
            raise ValidationFailed(f"unknown service {scope!r}", fields={"scope": ["'enterprise' or a service"]})
    return scope


def _end_version_if_idle(version_id: int, *, to: str, by: Actor, reason: str, scope: str,
                         action: AuditAction) -> None:
    """The version that lost a scope retires (or is rolled back) once it serves nowhere."""
    if Deployment.objects.filter(model_version_id=version_id, state=DeploymentState.PRODUCTION).exists():
        return
    old = _lock(version_id)
    if old.status in TRANSITIONS[to]:
        _transition(old, to, by=by, kind=to, action=action, reason=reason, scope=scope)


UNSET: Any = object()


def _replace_production(*, version: ModelVersion, scope: str, by: Actor, reason: str,
                        expected_current: Any = UNSET, from_canary: Deployment | None = None) -> Deployment:
    """Inside a transaction: retire the scope's production deployment and put ``version`` there.

    ``expected_current`` (a version id or None) makes it a compare-and-swap: the caller
    promotes only if production is still what it saw. Without it, what production holds when
    this transaction reads it is what is replaced; a racing promotion that got there first
    makes the conditional UPDATE or the insert fail, and that is a 409 either way.
    """
    now = timezone.now()
    current = Deployment.objects.filter(scope=scope, state=DeploymentState.PRODUCTION).first()
    current_version = current.model_version_id if current else None
    if expected_current is not UNSET and current_version != expected_current:
        raise Conflict(f"production for {scope} changed meanwhile (now version {current_version}); reload and retry",
                       fields={"scope": [scope]})
    if current is not None and current.model_version_id == version.pk:
        raise Conflict(f"{version.name} is already in production for {scope}")
    if current is not None and not Deployment.objects.filter(pk=current.pk, state=DeploymentState.PRODUCTION).update(
            state=DeploymentState.RETIRED, ended_at=now, updated_at=now):
        raise Conflict(f"another promotion for {scope} finished first; reload and retry",
                           fields={"scope": [scope]})
    try:
        with transaction.atomic():
            if from_canary is not None:
                if not Deployment.objects.filter(pk=from_canary.pk, state=DeploymentState.CANARY).update(
                        state=DeploymentState.PRODUCTION, previous=current, reason=reason, updated_at=now):
                    raise Conflict(f"the canary of {version.name} in {scope} has ended")
                deployment = Deployment.objects.get(pk=from_canary.pk)
            else:
                deployment = Deployment.objects.create(model_version=version, scope=scope,
                                                       state=DeploymentState.PRODUCTION, previous=current,
                                                       reason=reason, created_by=by.label[:200])
    except IntegrityError:
        raise Conflict(f"another promotion for {scope} finished first; reload and retry",
                       fields={"scope": [scope]}) from None
    if current is not None:
        _end_version_if_idle(current.model_version_id, to=S.RETIRED, by=by, scope=scope,
                             reason=f"replaced by {version.name} in {scope}",
                             action=AuditAction.MODEL_VERSION_RETIRED)
    return deployment


def _guard_db(fn: Callable[[], ModelVersion]) -> ModelVersion:
    """A deadlock or lock timeout between racing releases is a conflict the caller retries."""
    try:
        return fn()
    except DatabaseError as exc:
        if isinstance(exc, IntegrityError):
            raise Conflict("another release changed this scope first; reload and retry") from None
        message = str(exc).lower()
        if "deadlock" in message or "lock" in message or "could not serialize" in message:
            raise Conflict("another release changed this scope at the same moment; retry") from None
        raise


def _promotable(version: ModelVersion) -> None:
    if version.status == S.ROLLED_BACK:
        raise Conflict(f"{version.name} was rolled back; it needs a new approval before it is promoted again",
                       fields={"status": [version.status]})
    if version.status not in (S.APPROVED, S.CANARY, S.PRODUCTION):
        raise Conflict(f"{version.name} is {version.status}; only an approved version can be promoted",
                       fields={"status": [version.status]})
    if _needs_new_approval(version):
        raise Conflict(f"{version.name} was rolled back; it needs a new approval before it is promoted again",
                       fields={"status": ["rolled back since its last approval"]})


def model_version_promote(*, model_version_id: int, by: Actor, scope: str = "", reason: str = "",
                          expected_current: Any = UNSET) -> ModelVersion:
    """Put an approved version in production for one scope (the enterprise or a service).

    An enterprise version whose gates allow only a partial deployment goes to its passing
    services instead (``model_version_promote_partial``) unless its approval overrode the gates.
    """

    def run() -> ModelVersion:
        with transaction.atomic():
            version = _lock(model_version_id)
            target = _check_scope(version, scope)
            _promotable(version)
            report = latest_gate_report(version)
            overridden = version.approvals.filter(decision=ApprovalDecision.APPROVED, override=True).exists()
            if (target == ENTERPRISE_SCOPE and report is not None and report.decision == ReleaseDecision.PARTIAL
                    and not overridden):
                raise Conflict(f"{version.name} passes its gates for some services only; promote it per service "
                               "(partial deployment) or override", fields={"scope": report.passing_services})
            _replace_production(version=version, scope=target, by=by, reason=reason or "promoted",
                                expected_current=expected_current)
            before = version.status
            if before != S.PRODUCTION:
                _transition(version, S.PRODUCTION, by=by, kind="promoted", scope=target,
                            action=AuditAction.MODEL_VERSION_PROMOTED, reason=reason or f"promoted to {target}")
            else:
                _event(version, kind="promoted", by=by, from_status=before, to_status=before, scope=target,
                       reason=reason or f"promoted to {target}")
                audit_record(action=AuditAction.MODEL_VERSION_PROMOTED, by=by, object_type="model_version",
                             object_id=version.pk, detail={"name": version.name, "scope": target})
            _on_commit_mirror(version.pk)
            on_commit_adapter_load(version)  # its adapter on the LoRA upstream, once this commits
            return version

    return _guard_db(run)


def model_version_promote_partial(*, model_version_id: int, by: Actor, reason: str = "") -> ModelVersion:
    """Deploy to the services that pass their gates; the others keep their model and their
    owners are told why (the seed's rule for fewer than 20% failing services)."""

    def run() -> ModelVersion:
        with transaction.atomic():
            version = _lock(model_version_id)
            _promotable(version)
            report = latest_gate_report(version)
            if report is None or report.decision != ReleaseDecision.PARTIAL:
                raise Conflict(f"{version.name}'s gates do not call for a partial deployment "
                               f"({report.decision if report else 'no gates computed'})")
            if version.scope != ENTERPRISE_SCOPE:
                raise ValidationFailed("a per-service adapter deploys to its own service only")
            for service in report.passing_services:
                current = Deployment.objects.filter(scope=service, state=DeploymentState.PRODUCTION).first()
                if current is not None and current.model_version_id == version.pk:
                    continue
                _replace_production(version=version, scope=service, by=by,
                                    reason=reason or "partial deployment: passes its gates")
            detail = {"services": report.passing_services, "kept_previous": report.failing_services}
            if version.status != S.PRODUCTION:
                _transition(version, S.PRODUCTION, by=by, kind="partially_promoted",
                            action=AuditAction.MODEL_VERSION_PARTIALLY_PROMOTED,
                            reason=reason or f"to {len(report.passing_services)} passing services", detail=detail)
            for service in report.failing_services:
                numbers = report.failure_pattern.get("services", {}).get(service, {})
                _notify(audience="service_owners", subject=f"{service} keeps its current model",
                        text=f"{version.name} was deployed to services that pass their gates; {service} did not "
                             f"({numbers.get('why', 'see the gate report')}) and keeps its previous model.",
                        payload={"service": service, "model_version": version.name, "gate_report": report.pk,
                                 **numbers})
            _on_commit_mirror(version.pk)
            on_commit_adapter_load(version)
            return version

    return _guard_db(run)


def deployment_rollback(*, scope: str, by: Actor, reason: str) -> ModelVersion:
    """Put the previous production version of ``scope`` back, at once; the rolled-back version
    needs a new approval before it may serve again. Returns the restored version."""
    reason = reason.strip()
    if not reason:
        raise ValidationFailed("a rollback needs a reason", fields={"reason": ["say what went wrong"]})

    def run() -> ModelVersion:
        with transaction.atomic():
            current = Deployment.objects.select_for_update().filter(
                scope=scope, state=DeploymentState.PRODUCTION).first()
            if current is None:
                raise NotFound(f"nothing is in production for {scope}")
            previous = current.previous
            if previous is None:
                raise Conflict(f"{scope} has no previous production version to roll back to")
            now = timezone.now()
            Deployment.objects.filter(pk=current.pk).update(state=DeploymentState.ROLLED_BACK, ended_at=now,
                                                            updated_at=now)
            restored = _lock(previous.model_version_id)
            Deployment.objects.create(model_version=restored, scope=scope, state=DeploymentState.PRODUCTION,
                                      previous=previous.previous, reason=f"rollback: {reason}",
                                      created_by=by.label[:200])
            if restored.status != S.PRODUCTION:
                _transition(restored, S.PRODUCTION, by=by, kind="restored", scope=scope, reason=reason,
                            action=AuditAction.MODEL_VERSION_ROLLED_BACK)
            bad = _lock(current.model_version_id)
            if Deployment.objects.filter(model_version=bad, state=DeploymentState.PRODUCTION).exists():
                _event(bad, kind="rolled_back", by=by, from_status=bad.status, to_status=bad.status, scope=scope,
                       reason=reason)
                audit_record(action=AuditAction.MODEL_VERSION_ROLLED_BACK, by=by, object_type="model_version",
                             object_id=bad.pk, detail={"name": bad.name, "scope": scope, "reason": reason})
            else:
                _transition(bad, S.ROLLED_BACK, by=by, kind="rolled_back", scope=scope, reason=reason,
                            action=AuditAction.MODEL_VERSION_ROLLED_BACK, detail={"restored": restored.name})
            _on_commit_mirror(restored.pk)
            _on_commit_mirror(bad.pk)
            on_commit_adapter_load(restored)  # a restarted server may no longer hold the restored adapter
            return restored

    return _guard_db(run)


def model_version_rollback(*, model_version_id: int, by: Actor, reason: str, scope: str = "") -> ModelVersion:
    """Roll back ``model_version_id`` where it serves (``scope``, or every scope it is in)."""
    version = _versions(model_version_id).first()
    if version is None:
        raise NotFound(f"model version {model_version_id} does not exist")
    scopes = [scope] if scope else list(Deployment.objects.filter(
        model_version=version, state=DeploymentState.PRODUCTION).values_list("scope", flat=True))
    if not scopes:
        raise Conflict(f"{version.name} is not in production anywhere")
    restored = version
    for one in scopes:
        current = Deployment.objects.filter(scope=one, state=DeploymentState.PRODUCTION).first()
        if current is None or current.model_version_id != version.pk:
            raise Conflict(f"{version.name} is not in production for {one}")
        restored = deployment_rollback(scope=one, by=by, reason=reason)
    return restored


# --------------------------------------------------------------------------- canary (the gateway calls these)


def canary_start(*, model_version_id: int, by: Actor, scope: str = "", reason: str = "") -> Deployment:
    """Mark an approved version as the canary of a scope; the gateway splits the traffic."""

    def run() -> Deployment:
        with transaction.atomic():
            version = _lock(model_version_id)
            target = _check_scope(version, scope)
            _promotable(version)
            try:
                with transaction.atomic():
                    deployment = Deployment.objects.create(model_version=version, scope=target,
                                                           state=DeploymentState.CANARY, reason=reason or "canary",
                                                           created_by=by.label[:200])
            except IntegrityError:
                raise Conflict(f"{target} already has a canary; end it first", fields={"scope": [target]}) from None
            if version.status == S.APPROVED:
                _transition(version, S.CANARY, by=by, kind="canary_started", scope=target, reason=reason,
                            action=AuditAction.MODEL_VERSION_CANARY_STARTED)
            on_commit_adapter_load(version)
            return deployment

    try:
        return run()
    except DatabaseError as exc:
        raise Conflict(f"the canary could not start: {exc}") from None


def _canary(model_version_id: int, scope: str) -> tuple[ModelVersion, Deployment]:
    version = _lock(model_version_id)
    target = scope or version.scope
    deployment = Deployment.objects.select_for_update().filter(model_version=version, scope=target,
                                                               state=DeploymentState.CANARY).first()
    if deployment is None:
        raise Conflict(f"{version.name} is not the canary of {target}")
    return version, deployment


def canary_promote(*, model_version_id: int, by: Actor, scope: str = "", reason: str = "") -> ModelVersion:
    def run() -> ModelVersion:
        with transaction.atomic():
            version, deployment = _canary(model_version_id, scope)
            _promotable(version)
            _replace_production(version=version, scope=deployment.scope, by=by, reason=reason or "canary promoted",
                                from_canary=deployment)
            _transition(version, S.PRODUCTION, by=by, kind="canary_promoted", scope=deployment.scope,
                        reason=reason or "canary healthy", action=AuditAction.MODEL_VERSION_CANARY_PROMOTED)
            _on_commit_mirror(version.pk)
            on_commit_adapter_load(version)
            return version

    return _guard_db(run)


def canary_rollback(*, model_version_id: int, by: Actor, reason: str, scope: str = "") -> ModelVersion:
    reason = reason.strip()
    if not reason:
        raise ValidationFailed("a canary rollback needs a reason", fields={"reason": ["say what went wrong"]})
    with transaction.atomic():
        version, deployment = _canary(model_version_id, scope)
        now = timezone.now()
        Deployment.objects.filter(pk=deployment.pk).update(state=DeploymentState.ROLLED_BACK, ended_at=now,
                                                           updated_at=now)
        if version.status == S.CANARY and not Deployment.objects.filter(
                model_version=version, state=DeploymentState.PRODUCTION).exists():
            _transition(version, S.ROLLED_BACK, by=by, kind="canary_rolled_back", scope=deployment.scope,
                        reason=reason, action=AuditAction.MODEL_VERSION_CANARY_ROLLED_BACK)
        else:
            _event(version, kind="canary_rolled_back", by=by, scope=deployment.scope, reason=reason)
            audit_record(action=AuditAction.MODEL_VERSION_CANARY_ROLLED_BACK, by=by, object_type="model_version",
                         object_id=version.pk, detail={"scope": deployment.scope, "reason": reason})
        return version


# --------------------------------------------------------------------------- critical scenarios


@transaction.atomic
def critical_scenario_set(*, record_id: str, service: str, by: Actor, note: str = "") -> CriticalScenario:
    """Mark a test case critical for a service (idempotent; a second mark updates the note)."""
    from ftops.catalog.models import Service
    from ftops.datasets.models import TrainingExample

    record_id, service = record_id.strip(), service.strip()
    if not record_id:
        raise ValidationFailed("a record id is required", fields={"record_id": ["the test case's id"]})
    if not Service.objects.filter(name=service).exists():
        raise ValidationFailed(f"unknown service {service!r}", fields={"service": ["a catalog service name"]})
    example = TrainingExample.objects.filter(pk=int(record_id)).first() if record_id.isdigit() else None
    if example is not None and example.service.name != service:
        raise ValidationFailed(f"example {record_id} belongs to {example.service.name}, not {service}",
                               fields={"service": [example.service.name]})
    scenario, _ = CriticalScenario.objects.update_or_create(
        record_id=record_id[:120], defaults={"service": service, "example": example, "note": note[:300],
                                             "created_by": by.label[:200]})
    audit_record(action=AuditAction.CRITICAL_SCENARIO_SET, by=by, object_type="critical_scenario",
                 object_id=scenario.pk, detail={"record_id": record_id, "service": service})
    return scenario


@transaction.atomic
def critical_scenario_clear(*, record_id: str, by: Actor) -> None:
    deleted, _ = CriticalScenario.objects.filter(record_id=record_id).delete()
    if not deleted:
        raise NotFound(f"{record_id} is not marked critical")
    audit_record(action=AuditAction.CRITICAL_SCENARIO_CLEARED, by=by, object_type="critical_scenario",
                 object_id=record_id, detail={"record_id": record_id})

