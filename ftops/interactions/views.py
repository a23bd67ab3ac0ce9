"""Pages: the interaction log with filters, and one interaction."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from ftops.catalog.models import Service
from ftops.common.auth import deny, request_roles
from ftops.common.errors import NotFound
from ftops.common.models import Role
from ftops.common.selectors import CappedPaginator
from ftops.interactions import selectors
from ftops.interactions.models import FailureKind

READ_ROLES = [Role.INGEST.value, Role.REVIEWER.value]
PAGE_SIZE = 50


def _roles_or_403(request: HttpRequest, view_name: str) -> set[str]:
    roles = request_roles(request)
    if not roles & set(READ_ROLES):
        deny(request, needed=READ_ROLES, view_name=view_name)
        raise PermissionDenied("viewing interactions needs the ingest or reviewer role")
    return roles


@login_required
def interaction_list(request: HttpRequest) -> HttpResponse:
    roles = _roles_or_403(request, "interactions:list")
    service = request.GET.get("service") or None
    kind = request.GET.get("failure_kind") or None
    if kind and kind not in FailureKind.values:
        kind = None
    only_failures = request.GET.get("failures") == "1"
    qs = selectors.interactions_list(
        roles=roles, service=service, failure_kind=kind, is_failure=True if only_failures else None
    )
    page = CappedPaginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "interactions/list.html",
        {
            "nav_section": "interactions",
            "page": page,
            "services": Service.objects.order_by("name").values_list("name", flat=True),
            "failure_kinds": FailureKind.choices,
            "selected": {"service": service or "", "failure_kind": kind or "", "failures": only_failures},
            "query": query.urlencode(),
        },
    )


@login_required
def interaction_detail(request: HttpRequest, external_id: str) -> HttpResponse:
    roles = _roles_or_403(request, "interactions:detail")
    try:
        obj = selectors.interaction_get(external_id=external_id, roles=roles)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    return render(
        request,
        "interactions/detail.html",
        {"nav_section": "interactions", "it": obj, "feedback": selectors.feedback_events(obj),
         # Training examples made from this interaction (reviewed corrections, production
         # collection), read through the reverse relation: the datasets app is not imported here.
         "examples": list(obj.examples.order_by("pk").values("pk", "source")[:10])},
    )
