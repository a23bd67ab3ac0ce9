"""The retraining triggers page (its table is also a partial the datasets page loads with htmx) and the
improvement cycles: a list with a start button, and a cycle's stage timeline refreshed by htmx."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from ftops.catalog.models import Service
from ftops.common.actors import actor_for
from ftops.common.auth import deny, request_roles
from ftops.common.errors import FtopsError
from ftops.common.models import Role
from ftops.loop import cycles, selectors
from ftops.loop.hygiene import hygiene_schedule
from ftops.loop.models import ENTERPRISE_SCOPE, Cycle, CycleOrigin, CycleStatus, TriggerEvent

READ_ROLES = [Role.REVIEWER.value, Role.ML_ORCHESTRATOR.value, Role.ADMIN.value]


@login_required
def trigger_list(request: HttpRequest) -> HttpResponse:
    if not request_roles(request) & set(READ_ROLES):
        deny(request, needed=READ_ROLES, view_name="loop:triggers")
        raise PermissionDenied(f"this page needs one of the roles {READ_ROLES}")
    htmx = bool(getattr(request, "htmx", False))  # set by django-htmx's middleware
    template = "loop/triggers.html#triggers-table" if htmx else "loop/triggers.html"
    return render(request, template, {"nav_section": "datasets", "triggers": selectors.triggers_recent(limit=50)})


WRITE_ROLES = [Role.ML_ORCHESTRATOR.value, Role.ADMIN.value]


def _require(request: HttpRequest, roles: list[str], view_name: str) -> None:
    if not request_roles(request) & set(roles):
        deny(request, needed=roles, view_name=view_name)
        raise PermissionDenied(f"this page needs one of the roles {roles}")


def _schedule_context() -> dict[str, Any]:
    from ftops.datasets.config import ConfigError, load_config

    try:
        cfg = load_config().loop
        nxt = cycles.schedule_next(timezone.now(), cfg)
        return {"schedule": cycles.schedule_describe(cfg), "schedule_next": nxt, "cooldown_hours": cfg.cooldown_hours,
                "backend_setting": cfg.backend}
    except ConfigError as exc:
        return {"schedule": f"configuration error: {exc}", "schedule_next": None}


@login_required
def cycle_list(request: HttpRequest) -> HttpResponse:
    _require(request, READ_ROLES, "loop:cycles")
    htmx = bool(getattr(request, "htmx", False))
    template = "loop/cycles.html#cycles-table" if htmx else "loop/cycles.html"
    services = Service.objects.order_by("name").values_list("name", flat=True)
    return render(request, template, {
        "nav_section": "loop", "cycles": selectors.cycles_recent(limit=50), "services": list(services),
        "can_start": bool(request_roles(request) & set(WRITE_ROLES)),
        "waiting_triggers": TriggerEvent.objects.filter(cycle_link__isnull=True).count(), **_schedule_context(),
        "hygiene": hygiene_schedule(), "hygiene_runs": selectors.hygiene_runs_recent(limit=10),
    })


@login_required
def cycle_detail(request: HttpRequest, cycle_id: int) -> HttpResponse:
    _require(request, READ_ROLES, "loop:cycle")
    cycle = Cycle.objects.select_related("service").filter(pk=cycle_id).first()
    if cycle is None:
        raise Http404(f"cycle {cycle_id} does not exist")
    htmx = bool(getattr(request, "htmx", False))
    template = "loop/cycle_detail.html#timeline" if htmx else "loop/cycle_detail.html"
    folded = TriggerEvent.objects.filter(cycle_link__cycle=cycle).order_by("created_at")
    return render(request, template, {"nav_section": "loop", "cycle": cycle, "folded": folded,
                                      "timeline": selectors.cycle_timeline(cycle),
                                      "running": cycle.status == CycleStatus.RUNNING})


@login_required
@require_POST
def cycle_start_view(request: HttpRequest) -> HttpResponse:
    _require(request, WRITE_ROLES, "loop:start")
    scope = (request.POST.get("service") or "").strip() or ENTERPRISE_SCOPE
    try:
        # In the embedded default the stages would run inside this request: leave the first one
        # to the scheduler thread's next tick instead (with a broker a worker takes it at once).
        cycle = cycles.cycle_start(actor=actor_for(request), scope=scope, origin=CycleOrigin.MANUAL,
                                   reason=f"started by hand by {request.user}", send=cycles.runs_in_background())
    except FtopsError as exc:
        messages.error(request, exc.message)
        return _go(request, reverse("loop:cycles"))
    messages.success(request, f"Cycle {cycle.pk} for {cycle.scope} started.")
    return _go(request, reverse("loop:cycle", args=[cycle.pk]))


def _go(request: HttpRequest, url: str) -> HttpResponse:
    """A redirect; for htmx (the confirmed button) a full-page navigation it follows itself."""
    if getattr(request, "htmx", False):
        response = HttpResponse("")
        response["HX-Redirect"] = url
        return response
    return redirect(url)
