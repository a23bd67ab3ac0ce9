"""Putting a LoRA version on the server that serves it: vLLM's runtime adapter endpoints.

A version served as ``hf_lora`` answers through the OpenAI-compatible upstream registered as
``FTOPS_GATEWAY_LORA_UPSTREAM`` under the version's own name (``gateway.upstream.plan_for``).
When such a version starts serving (canary, production, a restored production, a shadow) its
adapter is loaded there with ``POST /v1/load_lora_adapter {"lora_name", "lora_path"}``: the
endpoint vLLM offers with ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``, and the one ftops' own
model server (``manage.py model-server``) offers with the same shapes, so this one piece of
code drives both.

The load goes out after the decision commits, as the Celery task
``registry.tasks.model_version_adapter_load`` (a rolled-back decision never loads anything,
and a slow server never holds a transaction). Loading twice is harmless: a server that holds
the adapter already says so (vLLM: 400 "has already been loaded"), which counts as loaded.

Rule 15: the endpoint and its key come from the admin-registered credential, the call goes
through the guarded outbound client (a LAN vLLM must be listed in ``FTOPS_OUTBOUND_ALLOW``),
and the path sent is the one the registry recorded at registration, never a caller's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction

from ftops.common.credentials import upstream_credential_get_secret
from ftops.common.errors import NotFound
from ftops.common.outbound import OutboundError, guarded_async_client, run_sync
from registry.models import ModelVersion

log = logging.getLogger(__name__)

LOAD_TASK = "registry.tasks.model_version_adapter_load"


class AdapterServerUnavailable(Exception):
    """The serving upstream could not be reached or failed (5xx): worth trying again later."""


class AdapterRefused(Exception):
    """The serving upstream refused the adapter (4xx other than "already loaded"): trying again will not help."""


@dataclass(frozen=True)
class AdapterLoad:
    model_version_id: int
    name: str
    outcome: str  # loaded, already_loaded, skipped
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"model_version_id": self.model_version_id, "name": self.name, "outcome": self.outcome,
                "detail": self.detail}


def _timeout_s(credential: str) -> float:
    options = settings.FTOPS_GATEWAY_UPSTREAM_OPTIONS.get(credential)
    return float(options[0] if options else settings.FTOPS_GATEWAY_TIMEOUT_S)


async def _post(base_url: str, key: str, path: str, body: dict[str, Any], timeout_s: float) -> tuple[int, str]:
    async with guarded_async_client(timeout_s=timeout_s, headers={"Authorization": f"Bearer {key}"}) as client:
        response = await client.post(f"{base_url.rstrip('/')}{path}", json=body)
        return response.status_code, response.text


def lora_adapter_call(*, credential: str, path: str, body: dict[str, Any]) -> tuple[int, str]:
    """POST ``body`` to ``path`` (``/load_lora_adapter``, ``/unload_lora_adapter``) of the credential's
    base URL (which ends in ``/v1``, as every OpenAI base URL does). (status, text) or AdapterServerUnavailable."""
    secret = upstream_credential_get_secret(credential)
    try:
        return run_sync(_post, secret.base_url, secret.value, path, body, _timeout_s(credential))
    except (OutboundError, OSError) as exc:
        raise AdapterServerUnavailable(f"{credential} could not be reached: {exc}") from exc
    except Exception as exc:  # httpx2's transport and timeout errors
        raise AdapterServerUnavailable(f"{credential} could not be reached: {type(exc).__name__}: {exc}") from exc


def lora_adapter_load(*, credential: str, name: str, lora_path: str) -> str:
    """"loaded" or "already_loaded"; AdapterRefused or AdapterServerUnavailable otherwise."""
    status, text = lora_adapter_call(credential=credential, path="/load_lora_adapter",
                                     body={"lora_name": name, "lora_path": lora_path})
    if status == 200:
        return "already_loaded" if "already" in text else "loaded"
    if status == 400 and "already been loaded" in text:
        return "already_loaded"
    if status >= 500 or status in (404, 408, 429):  # 404: a server started without runtime LoRA updating
        raise AdapterServerUnavailable(f"{credential} answered {status} to loading {name}: {text[:300]}")
    raise AdapterRefused(f"{credential} refused to load {name} ({status}): {text[:300]}")


def lora_adapter_unload(*, credential: str, name: str) -> bool:
    """True when the server dropped it, False when it did not hold it."""
    status, text = lora_adapter_call(credential=credential, path="/unload_lora_adapter", body={"lora_name": name})
    if status == 200:
        return True
    if status in (400, 404) and ("cannot be found" in text or "not found" in text.lower()):
        return False
    if status >= 500:
        raise AdapterServerUnavailable(f"{credential} answered {status} to unloading {name}: {text[:300]}")
    raise AdapterRefused(f"{credential} refused to unload {name} ({status}): {text[:300]}")


def model_version_adapter_load(*, model_version_id: int) -> AdapterLoad:
    """Load the version's adapter on the LoRA upstream; skipped (with why) when there is nothing to load."""
    version = ModelVersion.objects.filter(pk=model_version_id).first()
    if version is None:
        return AdapterLoad(model_version_id, "", "skipped", "the version no longer exists")
    serving = version.serving or {}
    if serving.get("kind") != "hf_lora" or not serving.get("adapter_path"):
        return AdapterLoad(version.pk, version.name, "skipped", "not served as a LoRA adapter")
    credential = settings.FTOPS_GATEWAY_LORA_UPSTREAM
    try:
        outcome = lora_adapter_load(credential=credential, name=version.name, lora_path=str(serving["adapter_path"]))
    except NotFound:
        log.warning("%s: no upstream credential %r to load its adapter on (FTOPS_GATEWAY_LORA_UPSTREAM)",
                    version.name, credential)
        return AdapterLoad(version.pk, version.name, "skipped", f"no upstream credential named {credential!r}")
    log.info("%s: adapter %s on %s", version.name, outcome.replace("_", " "), credential)
    return AdapterLoad(version.pk, version.name, outcome, credential)


def on_commit_adapter_load(version: ModelVersion) -> None:
    """After the surrounding transaction commits, load ``version``'s adapter where it will be served."""
    if (version.serving or {}).get("kind") != "hf_lora":
        return
    version_id = version.pk

    def send() -> None:
        from celery import current_app

        try:
            current_app.signature(LOAD_TASK, kwargs={"model_version_id": version_id}).delay()
        except Exception:  # a broker outage must not undo a release decision; the next sync loads it
            log.exception("could not send %s for model version %s", LOAD_TASK, version_id)

    transaction.on_commit(send)


def serving_adapters_load() -> list[AdapterLoad]:
    """Load every LoRA version in production or canary now: after the model server restarted empty.
    (A shadow is the gateway's; it loads its version itself when the shadow starts.)"""
    from registry.models import Deployment, DeploymentState

    ids = set(Deployment.objects.filter(state__in=[DeploymentState.PRODUCTION, DeploymentState.CANARY],
                                        model_version__serving__kind="hf_lora")
              .values_list("model_version_id", flat=True))
    out = []
    for version_id in sorted(ids):
        try:
            out.append(model_version_adapter_load(model_version_id=version_id))
        except (AdapterRefused, AdapterServerUnavailable) as exc:
            log.warning("model version %s: %s", version_id, exc)
            out.append(AdapterLoad(version_id, "", "failed", str(exc)))
    return out
