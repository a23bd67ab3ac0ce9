"""The retraining triggers page; its table is also a partial the datasets page loads with htmx."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from ftops.common.auth import deny, request_roles
from ftops.common.models import Role
from ftops.loop import selectors

READ_ROLES = [Role.REVIEWER.value, Role.ML_ORCHESTRATOR.value, Role.ADMIN.value]


@login_required
def trigger_list(request: HttpRequest) -> HttpResponse:
    if not request_roles(request) & set(READ_ROLES):
        deny(request, needed=READ_ROLES, view_name="loop:triggers")
        raise PermissionDenied(f"this page needs one of the roles {READ_ROLES}")
    htmx = bool(getattr(request, "htmx", False))  # set by django-htmx's middleware
    template = "loop/triggers.html#triggers-table" if htmx else "loop/triggers.html"
    return render(request, template, {"nav_section": "datasets", "triggers": selectors.triggers_recent(limit=50)})
