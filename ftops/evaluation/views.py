"""Pages: evaluation runs, one run with its charts, failure drill-down, comparison of two runs."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from ftops.common.auth import deny, request_roles
from ftops.common.errors import FtopsError, NotFound
from ftops.common.models import Role
from ftops.evaluation import selectors
from ftops.evaluation.models import RunStatus

READ_ROLES = [Role.ML_ORCHESTRATOR.value, Role.APPROVER.value, Role.REVIEWER.value]
PAGE_SIZE = 25
FAILURE_PAGE_SIZE = 50
TOOL_ROWS = 200


def _require_reader(request: HttpRequest, view_name: str) -> None:
    if not request_roles(request) & set(READ_ROLES):
        deny(request, needed=READ_ROLES, view_name=view_name)
        raise PermissionDenied("evaluation pages need the ml_orchestrator, approver or reviewer role")


def _run_or_404(run_id: int) -> Any:
    try:
        return selectors.run_get(run_id=run_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc


def _query_without_page(request: HttpRequest) -> str:
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()


@login_required
def run_list(request: HttpRequest) -> HttpResponse:
    _require_reader(request, "evaluation:runs")
    status = request.GET.get("status", "")
    if status not in RunStatus.values:
        status = ""
    page = Paginator(selectors.runs_list(status=status), PAGE_SIZE).get_page(request.GET.get("page"))
    finished = selectors.runs_list(status=RunStatus.SUCCEEDED)[:100]
    return render(request, "evaluation/runs.html", {
        "nav_section": "evaluation", "page": page, "status": status, "status_choices": RunStatus.choices,
        "finished": finished, "query": _query_without_page(request), "suites": selectors.suites_list(),
    })


@login_required
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    _require_reader(request, "evaluation:run")
    run = _run_or_404(run_id)
    groups = {key: selectors.group_rows(run, key) for key in selectors.GROUP_KEYS}
    if len(groups["tool"]) > TOOL_ROWS:  # imported suites have thousands of tools: show the weakest
        groups["tool"] = sorted(groups["tool"], key=lambda r: (r["exact"], -r["n"]))[:TOOL_ROWS]
    context = {
        "nav_section": "evaluation", "run": run, "charts": selectors.chart_data(run), "groups": groups,
        "error_counts": selectors.failure_counts(run),
    }
    if request.htmx:  # type: ignore[attr-defined]
        response = render(request, "evaluation/run_detail.html#progress", context)
        if run.is_finished:
            response["HX-Refresh"] = "true"  # swap the progress bar for the full results
        return response
    return render(request, "evaluation/run_detail.html", context)


@login_required
def run_failures(request: HttpRequest, run_id: int) -> HttpResponse:
    _require_reader(request, "evaluation:failures")
    run = _run_or_404(run_id)
    filters = {key: request.GET.get(key, "").strip() for key in ("category", "error_type", "service", "tool",
                                                                  "dimension")}
    failures = selectors.failures_for(run, **filters)
    page = Paginator(failures, FAILURE_PAGE_SIZE).get_page(request.GET.get("page"))
    facets = [(key, sorted((run.metrics or {}).get(metric, {})), filters[key])
              for key, metric in selectors.GROUP_KEYS.items() if key != "tool"]
    return render(request, "evaluation/failures.html", {
        "nav_section": "evaluation", "run": run, "page": page, "filters": filters, "facets": facets,
        "error_counts": selectors.failure_counts(run), "query": _query_without_page(request),
    })


@login_required
def run_compare(request: HttpRequest) -> HttpResponse:
    _require_reader(request, "evaluation:compare")
    context: dict[str, Any] = {"nav_section": "evaluation", "finished": selectors.runs_list(
        status=RunStatus.SUCCEEDED)[:100], "base_id": request.GET.get("base", ""),
        "other_id": request.GET.get("other", "")}
    if context["base_id"] and context["other_id"]:
        try:
            base = selectors.run_get(run_id=context["base_id"])
            other = selectors.run_get(run_id=context["other_id"])
            comparison = selectors.runs_compare(base=base, other=other)
        except FtopsError as exc:
            context["error"] = exc.message
        else:
            tools = comparison.groups.get("tool", [])
            if len(tools) > TOOL_ROWS:  # biggest changes first, regressions before gains
                ranked = sorted(tools, key=lambda r: (-abs(r.delta or 0.0), r.delta or 0.0, r.name))
                comparison.groups["tool"] = ranked[:TOOL_ROWS]
                context["tools_truncated"] = len(tools)
            context["comparison"] = comparison
            context["charts"] = {
                key: {"labels": [r.name for r in rows][:selectors.CHART_LIMIT],
                      "base": [r.base_exact for r in rows][:selectors.CHART_LIMIT],
                      "other": [r.other_exact for r in rows][:selectors.CHART_LIMIT]}
                for key, rows in comparison.groups.items() if key != "tool"
            }
    status = 422 if "error" in context else 200
    return render(request, "evaluation/compare.html", context, status=status)
