"""Pages: dataset versions (list, detail with the quality report, diff) and the example browser."""

from __future__ import annotations

import itertools
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from ftops.catalog.models import Service, Tool
from ftops.common.actors import actor_for
from ftops.common.auth import deny, request_roles
from ftops.common.errors import FtopsError, NotFound
from ftops.common.models import Role
from ftops.common.selectors import CappedPaginator
from ftops.common.views import paginate
from ftops.datasets import selectors
from ftops.datasets.models import Behavior, DatasetVersion, ExampleStatus, Quality, RunStatus, Source
from ftops.datasets.services import dataset_version_create

READ_ROLES = [Role.REVIEWER.value, Role.ML_ORCHESTRATOR.value, Role.ADMIN.value]
BUILD_ROLES = [Role.ML_ORCHESTRATOR.value, Role.ADMIN.value]
PAGE_SIZE = 50
DIFF_PAGE_SIZE = 25
TABLE_PAGE_SIZE = 50


def _require(request: HttpRequest, roles: list[str], view_name: str) -> set[str]:
    have = request_roles(request)
    if not have & set(roles):
        deny(request, needed=roles, view_name=view_name)
        raise PermissionDenied(f"this page needs one of the roles {roles}")
    return have


def _version_or_404(number: int) -> DatasetVersion:
    try:
        return selectors.version_get(number=number)
    except NotFound as exc:
        raise Http404(str(exc)) from exc


@login_required
def version_list(request: HttpRequest) -> HttpResponse:
    roles = _require(request, READ_ROLES, "datasets:versions")
    page = Paginator(selectors.versions_list(), PAGE_SIZE).get_page(request.GET.get("page"))
    ready = list(selectors.versions_list().filter(status=RunStatus.READY).values_list("number", flat=True))
    return render(request, "datasets/versions.html", {
        "nav_section": "datasets", "page": page, "can_build": bool(roles & set(BUILD_ROLES)),
        "versions_for_diff": ready,
        # Each ready version links to what changed since the ready version before it (newest first).
        "previous_ready": dict(itertools.pairwise(ready)),
    })


@login_required
@require_POST
def version_build(request: HttpRequest) -> HttpResponse:
    _require(request, BUILD_ROLES, "datasets:build")
    try:
        seed = int(request.POST.get("seed") or 0)
        rotation = int(request.POST.get("rotation") or 0)
    except ValueError:
        messages.error(request, "Seed and rotation must be whole numbers.")
        return redirect("datasets:versions")
    try:
        version = dataset_version_create(seed=seed, params={"rotation": rotation}, actor=actor_for(request))
    except FtopsError as exc:
        messages.error(request, f"Could not start the build: {exc.message} {exc.fields or ''}")
        return redirect("datasets:versions")
    messages.success(request, f"Dataset version {version.number} is being built on the curation queue.")
    return redirect("datasets:version", number=version.number)


def _charts(report: dict[str, Any]) -> dict[str, Any]:
    per_tool = report.get("per_tool", {})
    tools = sorted(per_tool)
    return {
        "tools": tools,
        "splits": {s: [per_tool[t].get(s, 0) for t in tools] for s in ("train", "validation", "test", "holdout")},
        "edge": [per_tool[t].get("edge_case_coverage", 0) for t in tools],
        "source_mix": report.get("source_mix", {}),
        "test_dimensions": report.get("test_dimensions", {}),
        "average": report.get("average_per_tool", 0),
    }


@login_required
def version_detail(request: HttpRequest, number: int) -> HttpResponse:
    _require(request, READ_ROLES, "datasets:version")
    version = _version_or_404(number)
    report = version.quality_report or {}
    per_tool = list((report.get("per_tool") or {}).items())
    context = {"nav_section": "datasets", "version": version, "report": report,
               "sizes": selectors.split_sizes(version) if version.status == RunStatus.READY else {},
               "charts": _charts(report),
               "tool_page": paginate(request, per_tool, TABLE_PAGE_SIZE, param="tool_page"),
               "conflict_page": paginate(request, report.get("conflicts") or [], TABLE_PAGE_SIZE,
                                         param="conflict_page")}
    htmx = bool(getattr(request, "htmx", False))  # set by django-htmx's middleware
    if htmx and version.status in (RunStatus.PENDING, RunStatus.RUNNING):
        return render(request, "datasets/version_detail.html#progress", context)
    if htmx:
        response = HttpResponse(status=204)
        response["HX-Refresh"] = "true"  # the build finished: show the full page with its report
        return response
    return render(request, "datasets/version_detail.html", context)


@login_required
def version_diff(request: HttpRequest) -> HttpResponse:
    _require(request, READ_ROLES, "datasets:diff")
    try:
        a = _version_or_404(int(request.GET.get("a", "")))
        b = _version_or_404(int(request.GET.get("b", "")))
    except ValueError as exc:
        raise Http404("choose two version numbers, ?a=1&b=2") from exc
    changes = selectors.versions_diff_changes(a=a, b=b)
    diff = selectors.versions_diff(a=a, b=b, sample=0, changes=changes)
    pages = {kind: paginate(request, rows, DIFF_PAGE_SIZE, param=f"{kind}_page") for kind, rows in changes.items()}
    queries = selectors.example_queries(pk for page in pages.values() for pk, _, _ in page.object_list)
    for kind, page in pages.items():
        page.object_list = selectors.diff_rows(kind, page.object_list, queries)
    return render(request, "datasets/version_diff.html", {
        "nav_section": "datasets", "a": a, "b": b, "diff": diff,
        "lists": [("added", "Added", pages["added"]), ("removed", "Removed", pages["removed"]),
                  ("moved", "Moved to another split or dimension", pages["moved"])],
        "versions_for_diff": selectors.versions_list().filter(status=RunStatus.READY).values_list("number", flat=True),
    })


@login_required
def example_list(request: HttpRequest) -> HttpResponse:
    _require(request, READ_ROLES, "datasets:examples")
    choices = {"source": Source.values, "quality": Quality.values, "behavior": Behavior.values,
               "status": ExampleStatus.values}
    selected = {key: request.GET.get(key, "").strip() for key in ("service", "tool", "source", "quality", "behavior",
                                                                   "status", "q")}
    for key, allowed in choices.items():
        if selected[key] and selected[key] not in allowed:
            selected[key] = ""
    page = CappedPaginator(selectors.examples_search(**selected), PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    tools = Tool.objects.order_by("name").values_list("name", flat=True).distinct()
    if selected["service"]:
        tools = tools.filter(service__name=selected["service"])
    return render(request, "datasets/examples.html", {
        "nav_section": "datasets", "page": page, "selected": selected, "query": query.urlencode(),
        "services": Service.objects.order_by("name").values_list("name", flat=True), "tools": tools,
        "sources": Source.choices, "qualities": Quality.choices, "behaviors": Behavior.choices,
        "statuses": ExampleStatus.choices,
    })


@login_required
def example_detail(request: HttpRequest, example_id: int) -> HttpResponse:
    _require(request, READ_ROLES, "datasets:example")
    try:
        example = selectors.example_get(example_id=example_id)
    except NotFound as exc:
        raise Http404(str(exc)) from exc
    review_item = (example.provenance or {}).get("review_item") if isinstance(example.provenance, dict) else None
    return render(request, "datasets/example_detail.html", {
        "nav_section": "datasets", "example": example,
        "review_item": review_item if isinstance(review_item, int) else None,
        "memberships": example.memberships.select_related("version").order_by("-version__number")[:20],
        "derived": example.derived.order_by("-id")[:20],
    })
