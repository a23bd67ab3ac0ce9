"""Shadow mode: production's calls answered again by a candidate version, whose answer reaches
nobody, and the two answers' tool calls compared.

The gateway hands every production answer to ``ShadowRunner.after_production`` which only
schedules a task on the event loop and returns: the copy runs after the caller's answer is on
its way, through the same pooled upstream clients, and its comparison is written from the
gateway's database threads. A shadow that fails or is slow costs the caller nothing; its
failure is recorded as a comparison with an ``error``.

Which versions shadow a service: the active ``ShadowDeployment`` rows of the service's scope
or of the enterprise scope (``shadow_start``/``shadow_stop``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ftops.common.actors import Actor
from ftops.common.errors import Conflict, NotFound
from ftops.common.models import AuditAction
from ftops.common.services import audit_record
from ftops.gateway.models import Arm, ShadowComparison, ShadowDeployment
from ftops.gateway.selectors import Target
from registry.models import ENTERPRISE_SCOPE, ModelVersion, VersionStatus
from registry.serving import on_commit_adapter_load

if TYPE_CHECKING:
    from ftops.gateway.app import Call, GatewayApp

log = logging.getLogger(__name__)

# A rejected or rolled-back version has nothing left to prove on real traffic.
SHADOWABLE = (VersionStatus.GATES_PASSED, VersionStatus.GATES_BLOCKED, VersionStatus.APPROVED,
              VersionStatus.CANARY, VersionStatus.EVALUATED, VersionStatus.REGISTERED)


# --- comparing calls -----------------------------------------------------------------------------


def _arguments(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return raw  # unreadable arguments compare verbatim
    return raw


def normalised_calls(message: dict[str, Any] | None) -> list[tuple[str, str]]:
    """(name, canonical arguments) per tool call; order-free, so parallel calls compare as a multiset."""
    out: list[tuple[str, str]] = []
    for call in (message or {}).get("tool_calls") or []:
        if not isinstance(call, dict):
            continue
        function = call.get("function") or {}
        name = str(function.get("name") or "")
        args = json.dumps(_arguments(function.get("arguments")), sort_keys=True, separators=(",", ":"))
        out.append((name, args))
    return sorted(out)


def calls_agree(production: dict[str, Any] | None, shadow: dict[str, Any] | None) -> tuple[bool, bool]:
    """(same tools, same tools with the same arguments). Two answers without calls agree."""
    a, b = normalised_calls(production), normalised_calls(shadow)
    tools = Counter(name for name, _ in a) == Counter(name for name, _ in b)
    return tools, tools and a == b


# --- starting and stopping shadows -----------------------------------------------------------------


def shadow_start(*, model_version_id: int, scope: str, by: Actor, sample_rate: float = 1.0) -> ShadowDeployment:
    if not 0 < sample_rate <= 1:
        from ftops.common.errors import ValidationFailed

        raise ValidationFailed("sample_rate must lie in (0, 1]", fields={"sample_rate": [str(sample_rate)]})
    with transaction.atomic():
        version = ModelVersion.objects.filter(pk=model_version_id).first()
        if version is None:
            raise NotFound(f"no model version {model_version_id}")
        if version.status not in SHADOWABLE:
            raise Conflict(f"{version.name} is {version.status}; it cannot shadow traffic",
                           fields={"status": [version.status]})
        if version.scope not in (ENTERPRISE_SCOPE, scope):
            raise Conflict(f"{version.name} belongs to {version.scope}; it cannot shadow {scope}",
                           fields={"scope": [scope]})
        if ShadowDeployment.objects.filter(model_version=version, scope=scope, active=True).exists():
            raise Conflict(f"{version.name} already shadows {scope}")
        shadow = ShadowDeployment.objects.create(model_version=version, scope=scope, sample_rate=sample_rate,
                                                 created_by=by.label[:200])
        audit_record(action=AuditAction.SHADOW_STARTED, by=by, object_type="model_version", object_id=version.pk,
                     detail={"shadow_id": shadow.pk, "scope": scope, "sample_rate": sample_rate})
        on_commit_adapter_load(version)  # a LoRA shadow needs its adapter on the LoRA upstream
        return shadow


def shadow_stop(*, shadow_id: int, by: Actor) -> ShadowDeployment:
    with transaction.atomic():
        shadow = ShadowDeployment.objects.select_for_update().filter(pk=shadow_id).first()
        if shadow is None:
            raise NotFound(f"no shadow {shadow_id}")
        if not shadow.active:
            raise Conflict("the shadow has already stopped")
        shadow.active = False
        shadow.ended_at = timezone.now()
        shadow.save(update_fields=["active", "ended_at"])
        audit_record(action=AuditAction.SHADOW_ENDED, by=by, object_type="model_version",
                     object_id=shadow.model_version_id, detail={"shadow_id": shadow.pk, "scope": shadow.scope})
        return shadow


@dataclass(frozen=True)
class ShadowTarget:
    shadow_id: int
    sample_rate: float
    target: Target


def active_shadows(*, service: str) -> list[ShadowTarget]:
    rows = (ShadowDeployment.objects.filter(Q(scope=service) | Q(scope=ENTERPRISE_SCOPE), active=True)
            .select_related("model_version"))
    return [ShadowTarget(shadow_id=s.pk, sample_rate=s.sample_rate,
                         target=Target(model_version_id=s.model_version_id, name=s.model_version.name,
                                       serving=dict(s.model_version.serving or {}), scope=s.scope,
                                       arm="shadow"))
            for s in rows]


def shadow_comparison_record(*, shadow: ShadowTarget, call_id: str, service: str, production_version: str,
                             production: dict[str, Any] | None, answer: dict[str, Any] | None, error: str,
                             latency_ms: float) -> ShadowComparison:
    tools, arguments = calls_agree(production, answer) if not error else (False, False)
    return ShadowComparison.objects.create(
        shadow_id=shadow.shadow_id, model_version_id=shadow.target.model_version_id, call_id=call_id[:100],
        production_version=production_version[:200], service=service[:100], tools_agree=tools,
        arguments_agree=arguments, error=error[:200], latency_ms=latency_ms)


# --- the gateway's side ------------------------------------------------------------------------------


class ShadowRunner:
    """Schedules shadow copies from the gateway's request path; holds the tasks so none is lost to GC."""

    def __init__(self, app: GatewayApp) -> None:
        from django.conf import settings

        from ftops.gateway.routing import TTLCache

        self.app = app
        # Cached like the routes: a shadow started or stopped is seen within the same TTL.
        self._shadows: TTLCache[list[ShadowTarget]] = TTLCache(settings.FTOPS_GATEWAY_CACHE_S, app.threads)
        self._tasks: set[asyncio.Task[None]] = set()

    def after_production(self, call: Call, target: Target, message: dict[str, Any]) -> None:
        """Called once production answered; returns at once."""
        if target.arm != Arm.PRODUCTION:
            return
        if self._shadows.peek(("shadow", call.decision.service)) == []:
            return  # known to have no shadow: no task per call
        task = asyncio.get_running_loop().create_task(self._run(call, target, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout: float = 10.0) -> None:
        """Let the copies in flight finish (tests, shutdown)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    async def _run(self, call: Call, target: Target, message: dict[str, Any]) -> None:
        from ftops.gateway.app import upstream_body
        from ftops.gateway.strict_tools import strict_request, strip_completion
        from ftops.gateway.upstream import UpstreamFailure, complete, plan_for

        service = call.decision.service
        try:
            shadows = await self._shadows.get(("shadow", service), lambda: active_shadows(service=service))
        except Exception:
            log.warning("shadow: reading the shadows of %s failed", service, exc_info=True)
            return
        body = dict(call.body)
        body["stream"] = False
        body.pop("stream_options", None)
        for shadow in shadows:
            if shadow.target.model_version_id == target.model_version_id or random.random() >= shadow.sample_rate:
                continue
            started = time.perf_counter()
            answer: dict[str, Any] | None = None
            error = ""
            try:
                plan = plan_for(shadow.target)
                upstream = await self.app.upstreams.get(plan.credential)
                request = strict_request(upstream_body(body, plan), plan, upstream, stream=False)
                reply = await complete(upstream, request.body)
                strip_completion(reply, request.originals)
                choices = reply.get("choices") or []
                first = choices[0].get("message") if choices and isinstance(choices[0], dict) else None
                answer = first if isinstance(first, dict) else {}
            except UpstreamFailure as failure:
                error = failure.kind
            except Exception as exc:  # a shadow never reaches the caller; its problem is only a record
                error = type(exc).__name__
            latency_ms = (time.perf_counter() - started) * 1000

            def write(shadow: ShadowTarget = shadow, answer: dict[str, Any] | None = answer, error: str = error,
                      latency_ms: float = latency_ms) -> None:
                shadow_comparison_record(shadow=shadow, call_id=call.id, service=service,
                                         production_version=target.name, production=message, answer=answer,
                                         error=error, latency_ms=latency_ms)

            try:
                await self.app.threads.run(write)
            except Exception:
                log.warning("shadow: recording the comparison of %s failed", call.id, exc_info=True)
