"""Celery tasks of the registry: ids in, one service call. Lower apps send these by name."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from ftops.common.errors import Conflict, NotFound
from registry import services

log = logging.getLogger(__name__)


@shared_task(name="registry.tasks.model_version_register_for_run", acks_late=True)
def model_version_register_for_run(training_run_id: int) -> dict[str, Any]:
    """Sent by training when a run succeeds; registering twice returns the same version."""
    try:
        version = services.model_version_register_for_run(training_run_id=training_run_id)
    except (NotFound, Conflict) as exc:  # the run vanished or did not succeed: nothing to register
        log.warning("training run %s not registered: %s", training_run_id, exc)
        return {"training_run_id": training_run_id, "model_version_id": None}
    return {"training_run_id": training_run_id, "model_version_id": version.pk, "name": version.name}


@shared_task(name="registry.tasks.model_version_evaluation_run", acks_late=True)
def model_version_evaluation_run(model_version_id: int) -> dict[str, Any]:
    """Runs the version's evaluation runs (each claimed, so a redelivery is harmless) and writes back."""
    version = services.model_version_evaluation_execute(model_version_id=model_version_id)
    return {"model_version_id": version.pk, "status": version.status}


@shared_task(name="registry.tasks.model_versions_collect_evaluations")
def model_versions_collect_evaluations() -> list[int]:
    """Beat: write back evaluations that finished while no registry task was watching."""
    return services.model_versions_collect_evaluations()


@shared_task(name="registry.tasks.model_version_mirror", acks_late=True)
def model_version_mirror(model_version_id: int) -> bool:
    """Mirror a version to MLflow; False when the mirror is not installed."""
    from registry.mlflow_sync import model_version_mirror_now

    return model_version_mirror_now(model_version_id=model_version_id)


@shared_task(name="registry.tasks.model_version_adapter_load", bind=True, acks_late=True, max_retries=5)
def model_version_adapter_load(self: Any, model_version_id: int) -> dict[str, Any]:
    """Sent on commit when a LoRA version starts serving: load its adapter on the LoRA upstream.

    An unreachable or failing server is tried again with back-off on a worker; in-process (no
    broker) the failure is logged and the next load (``serving_adapters_load``) catches up.
    """
    from registry.serving import AdapterRefused, AdapterServerUnavailable, model_version_adapter_load

    try:
        return model_version_adapter_load(model_version_id=model_version_id).as_dict()
    except AdapterRefused as exc:
        log.error("model version %s: %s", model_version_id, exc)
        return {"model_version_id": model_version_id, "outcome": "refused", "detail": str(exc)}
    except AdapterServerUnavailable as exc:
        if self.request.is_eager:
            log.warning("model version %s: %s", model_version_id, exc)
            return {"model_version_id": model_version_id, "outcome": "unavailable", "detail": str(exc)}
        raise self.retry(exc=exc, countdown=min(300, 10 * 2 ** self.request.retries)) from exc


@shared_task(name="registry.tasks.serving_adapters_load")
def serving_adapters_load() -> list[dict[str, Any]]:
    """Load every serving LoRA version's adapter (run it after the model server or vLLM restarted)."""
    from registry.serving import serving_adapters_load as load_all

    return [load.as_dict() for load in load_all()]
