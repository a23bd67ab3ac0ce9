"""Registry test data: versions, finished evaluation runs and their failures, through the ORM."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from ftops.common.actors import Actor
from ftops.evaluation.models import EvalFailure, EvalRun, EvalSuite
from ftops.training.models import TrainingRun
from registry.models import ModelVersion, VersionStatus
from registry.services import model_version_register

CREATOR = Actor(label="carol")
APPROVER = Actor(label="alice")
SECOND_APPROVER = Actor(label="bob")


def rates(exact: float, n: int) -> dict[str, Any]:
    return {"n": n, "exact": exact, "tool": exact, "args": exact, "values": exact}


def finished_run(suite: EvalSuite, *, exact: float, n: int, by_service: dict[str, tuple[float, int]] | None = None,
                 by_category: dict[str, tuple[float, int]] | None = None, p95: float = 100.0,
                 parse_errors: int = 0, failures: list[tuple[str, str, str]] | None = None,
                 model_version_id: int | None = None, perplexity: float | None = None) -> EvalRun:
    """A succeeded run with the metrics evaluation would store; failures are (record id, service, error)."""
    metrics: dict[str, Any] = {
        "overall": rates(exact, n),
        "by_category": {k: rates(v, m) for k, (v, m) in (by_category or {"simple": (exact, n)}).items()},
        "by_service": {k: rates(v, m) for k, (v, m) in (by_service or {"payments": (exact, n)}).items()},
        "by_tool": {}, "by_dimension": {}, "latency_ms": {"p50": p95 / 2, "p95": p95},
        "tokens": {"prompt": 10 * n, "completion": 2 * n}, "parse_errors": parse_errors,
    }
    if perplexity is not None:
        metrics["perplexity"] = perplexity
    run = EvalRun.objects.create(suite=suite, adapter_config={"kind": "replay", "path": "x.jsonl"},
                                 model_version_id=model_version_id, status="succeeded", exact=exact,
                                 metrics=metrics, progress_done=n, progress_total=n, finished_at=timezone.now())
    for record_id, service, error_type in failures or []:
        EvalFailure.objects.create(run=run, record_id=record_id, category="simple", service=service,
                                   error_type=error_type)
    return run


def version(*, base: str = "/models/tiny-base", scope: str = "enterprise", created_by: Actor = CREATOR,
            training_run: TrainingRun | None = None, **kwargs: Any) -> ModelVersion:
    return model_version_register(base_model=base, artifact_path=kwargs.pop("artifact_path", "/a/lora"),
                                  scope=scope, by=created_by, training_run=training_run, **kwargs)


def force_status(mv: ModelVersion, status: str) -> ModelVersion:
    """Put a version in a status directly (for tests that start mid-way)."""
    ModelVersion.objects.filter(pk=mv.pk).update(status=status)
    mv.refresh_from_db()
    return mv


def approved(**kwargs: Any) -> ModelVersion:
    from registry.services import model_version_approve

    mv = force_status(version(**kwargs), VersionStatus.GATES_PASSED)
    return model_version_approve(model_version_id=mv.pk, by=APPROVER, comment="looks good")
