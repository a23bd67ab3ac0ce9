"""The deployments page of a service: what is live, the split, per-arm charts, and the canary's
Promote now / Pause / Resume / Roll back now buttons.

Reading needs the approver, ml_orchestrator or reviewer role; acting on a canary needs the
approver role. A refused action shows the service's message with its 4xx status, never a 500.
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
from ftops.common.errors import FtopsError
from ftops.common.models import Role
from ftops.gateway.canary import canary_act
from ftops.gateway.models import CanaryAction
from ftops.gateway.page_selectors import service_deployments
from registry.models import ENTERPRISE_SCOPE, Deployment

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
