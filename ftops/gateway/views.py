"""The deployments page of a service: what is live, the split, per-arm charts, the canary's
Promote now / Pause / Resume / Roll back now buttons, and shadows (start one for an approved
version, stop it, read how often its tool calls agreed with production's).

Reading needs the approver, ml_orchestrator or reviewer role; acting on a canary or a shadow
needs the approver role. A refused action shows the service's message with its 4xx status,
never a 500. Starting and stopping a shadow are audited by ``shadow.shadow_start``/``shadow_stop``.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from ftops.catalog.models import Service
from ftops.common.actors import actor_for
from ftops.common.auth import deny, request_roles
from ftops.common.errors import Conflict, FtopsError, NotFound, ValidationFailed
from ftops.common.models import Role
from ftops.gateway.canary import canary_act
from ftops.gateway.models import CanaryAction, ShadowDeployment
from ftops.gateway.page_selectors import service_deployments
from ftops.gateway.shadow import shadow_start, shadow_stop
from registry.models import ENTERPRISE_SCOPE, Deployment, ModelVersion, VersionStatus

READ_ROLES = [Role.APPROVER.value, Role.ML_ORCHESTRATOR.value, Role.REVIEWER.value]
ACT_ROLES = [Role.APPROVER.value]
ACTIONS = {"promote": CanaryAction.PROMOTE, "pause": CanaryAction.PAUSE, "resume": CanaryAction.RESUME,
           "rollback": CanaryAction.ROLLBACK}


def _require(request: HttpRequest, roles: list[str], view_name: str) -> None:
    if not request_roles(request) & set(roles):
        deny(request, needed=roles, view_name=view_name)
        raise PermissionDenied(f"this needs one of the roles {', '.join(roles)}")


def _context(request: HttpRequest, service: str, **extra: Any) -> dict[str, Any]:
    return {"nav_section": "registry", "may_act": bool(request_roles(request) & set(ACT_ROLES)),
            **service_deployments(service=service), **extra}


@require_GET
@login_required
def deployments(request: HttpRequest, service: str) -> HttpResponse:
    _require(request, READ_ROLES, "gateway:deployments")
    if service != ENTERPRISE_SCOPE and not Service.objects.filter(name=service).exists():
        raise Http404(f"no service named {service}")
    context = _context(request, service)
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "gateway/deployments.html#live", context)
    return render(request, "gateway/deployments.html", context)


@require_POST
@login_required
def canary_action(request: HttpRequest, deployment_id: int, action: str) -> HttpResponse:
    _require(request, ACT_ROLES, "gateway:canary-action")
    deployment = Deployment.objects.filter(pk=deployment_id).first()
    if deployment is None or action not in ACTIONS:
        raise Http404("no such canary action")
    service = request.POST.get("service") or deployment.scope
    message, error, status = "", "", 200
    try:
        decision = canary_act(deployment_id=deployment_id, action=ACTIONS[action], by=actor_for(request),
                              reason=request.POST.get("reason", ""))
        message = f"{decision.get_action_display()}: {decision.reason}"
    except FtopsError as exc:
        error, status = exc.message, exc.status_code
    context = _context(request, service, message=message, error=error)
    template = "gateway/deployments.html#live" if request.htmx else "gateway/deployments.html"  # type: ignore[attr-defined]
    return render(request, template, context, status=status)


def _render_live(request: HttpRequest, service: str, *, message: str, error: str, status: int) -> HttpResponse:
    context = _context(request, service, message=message, error=error)
    template = "gateway/deployments.html#live" if request.htmx else "gateway/deployments.html"  # type: ignore[attr-defined]
    return render(request, template, context, status=status)


def _known_service(service: str) -> None:
    if service != ENTERPRISE_SCOPE and not Service.objects.filter(name=service).exists():
        raise Http404(f"no service named {service}")


def _sample_rate(raw: str) -> float:
    raw = raw.strip()
    if not raw:
        return 1.0
    try:
        return float(raw)
    except ValueError:
        raise ValidationFailed("the sample rate must be a number in (0, 1]",
                               fields={"sample_rate": [raw[:50]]}) from None


@require_POST
@login_required
def shadow_start_view(request: HttpRequest, service: str) -> HttpResponse:
    """Start a shadow of ``service`` (its scope) for the approved version ``model_version_id``."""
    _require(request, ACT_ROLES, "gateway:shadow-start")
    _known_service(service)
    message, error, status = "", "", 200
    try:
        raw_id = request.POST.get("model_version_id", "").strip()
        if not raw_id.isdigit():
            raise ValidationFailed("choose the version to shadow", fields={"model_version_id": [raw_id[:50]]})
        version = ModelVersion.objects.filter(pk=int(raw_id)).first()
        if version is None:
            raise NotFound(f"no model version {raw_id}")
        if version.status != VersionStatus.APPROVED:  # the page offers approved versions only
            raise Conflict(f"{version.name} is {version.get_status_display().lower()}; only an approved version "
                           "is shadowed from this page", fields={"model_version_id": [raw_id]})
        shadow = shadow_start(model_version_id=version.pk, scope=service, by=actor_for(request),
                              sample_rate=_sample_rate(request.POST.get("sample_rate", "")))
        message = (f"{shadow.model_version.name} now shadows {service}: it answers a copy of "
                   f"{shadow.sample_rate:.0%} of production's calls, and nobody sees its answers")
    except FtopsError as exc:
        error, status = exc.message, exc.status_code
    return _render_live(request, service, message=message, error=error, status=status)


@require_POST
@login_required
def shadow_stop_view(request: HttpRequest, shadow_id: int) -> HttpResponse:
    _require(request, ACT_ROLES, "gateway:shadow-stop")
    found = ShadowDeployment.objects.filter(pk=shadow_id).select_related("model_version").first()
    if found is None:
        raise Http404("no such shadow")
    service = request.POST.get("service") or found.scope
    _known_service(service)
    message, error, status = "", "", 200
    try:
        shadow_stop(shadow_id=shadow_id, by=actor_for(request))
        message = f"{found.model_version.name} no longer shadows {found.scope}"
    except FtopsError as exc:
        error, status = exc.message, exc.status_code
    return _render_live(request, service, message=message, error=error, status=status)
