"""Pages: evaluation runs, one run with its charts, failure drill-down, comparison of two runs."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models.functions import Length
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from ftops.common.actors import actor_for
from ftops.common.auth import deny, request_roles
from ftops.common.errors import FtopsError, NotFound
from ftops.common.models import Role
from ftops.common.views import paginate
from ftops.evaluation import selectors
from ftops.evaluation.models import EvalFailure, EvalRun, RunStatus, SuiteKind

READ_ROLES = [Role.ML_ORCHESTRATOR.value, Role.APPROVER.value, Role.REVIEWER.value]
# Sending a failed case to review, or making a training example of it.
ACT_ROLES = [Role.ML_ORCHESTRATOR.value, Role.REVIEWER.value]
PAGE_SIZE = 25
FAILURE_PAGE_SIZE = 50
TOOL_PAGE_SIZE = 50  # imported suites have thousands of tools
CASE_PAGE_SIZE = 50
# A group scored on fewer cases than this gets a warning: one case more or less swings it by
# 10 points or more (a 1-case category drawn as a 100% bar means nothing).
MIN_GROUP_CASES = 10


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


def _link_examples(run: EvalRun, failures: list[EvalFailure]) -> list[EvalFailure]:
    """Dataset suites score training examples: a failure's ``record_id`` is the example's id."""
    dataset = run.suite.kind == SuiteKind.DATASET
    for failure in failures:
        failure.example_id = (  # type: ignore[attr-defined]
            int(failure.record_id) if dataset and failure.record_id.isdigit() else None)
    return failures


def _run_choices() -> Any:
    """The newest finished runs for the compare pickers: only what an option shows (metrics of an
    imported suite hold thousands of tools)."""
    return selectors.runs_list(status=RunStatus.SUCCEEDED).defer("metrics", "adapter_config")[:100]


@login_required
def run_list(request: HttpRequest) -> HttpResponse:
    _require_reader(request, "evaluation:runs")
    status = request.GET.get("status", "")
    if status not in RunStatus.values:
        status = ""
    page = Paginator(selectors.runs_list(status=status), PAGE_SIZE).get_page(request.GET.get("page"))
    finished = _run_choices()
    return render(request, "evaluation/runs.html", {
        "nav_section": "evaluation", "page": page, "status": status, "status_choices": RunStatus.choices,
        "finished": finished, "query": _query_without_page(request), "suites": selectors.suites_list(),
    })


@login_required
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    _require_reader(request, "evaluation:run")
    run = _run_or_404(run_id)
    groups: dict[str, Any] = {key: selectors.group_rows(run, key) for key in selectors.GROUP_KEYS}
    # Weakest tools first, a page at a time (the chart shows the 30 weakest).
    tools = sorted(groups["tool"], key=lambda r: (r["exact"], -r["n"], r["name"]))
    tool_page = paginate(request, tools, TOOL_PAGE_SIZE, param="tool_page")
    groups["tool"] = list(tool_page.object_list)
    targets = selectors.configured_targets()
    context = {
        "nav_section": "evaluation", "run": run, "charts": selectors.chart_data(run, targets), "groups": groups,
        "error_counts": selectors.failure_counts(run), "tool_page": tool_page,
        "targets": selectors.category_targets(run, targets), "min_cases": MIN_GROUP_CASES,
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
    page.object_list = _link_examples(run, list(page.object_list))
    facets = [(key, [(name, selectors.group_label(key, name)) for name in sorted((run.metrics or {}).get(metric, {}))],
               filters[key])
              for key, metric in selectors.GROUP_KEYS.items() if key != "tool"]
    return render(request, "evaluation/failures.html", {
        "nav_section": "evaluation", "run": run, "page": page, "filters": filters, "facets": facets,
        "error_counts": selectors.failure_counts(run), "query": _query_without_page(request),
        "filtered": any(filters.values()), "can_act": bool(request_roles(request) & set(ACT_ROLES)),
    })


@login_required
def run_compare(request: HttpRequest) -> HttpResponse:
    _require_reader(request, "evaluation:compare")
    context: dict[str, Any] = {"nav_section": "evaluation", "finished": _run_choices(),
        "base_id": request.GET.get("base", ""),
        "other_id": request.GET.get("other", "")}
    if context["base_id"] and context["other_id"]:
        try:
            base = selectors.run_get(run_id=context["base_id"])
            other = selectors.run_get(run_id=context["other_id"])
            comparison = selectors.runs_compare(base=base, other=other, case_lists=False)
        except FtopsError as exc:
            context["error"] = exc.message
        else:
            for key, rows in list(comparison.groups.items()):
                if key != "tool":  # regressions first, the worst at the top; then unchanged, then gains
                    comparison.groups[key] = sorted(rows, key=lambda r: (r.delta is None, r.delta or 0.0, r.name))
            if "tool" in comparison.groups:  # biggest changes first, regressions before gains
                ranked = sorted(comparison.groups["tool"], key=lambda r: (-abs(r.delta or 0.0), r.delta or 0.0,
                                                                          r.name))
                context["tool_page"] = paginate(request, ranked, TOOL_PAGE_SIZE, param="tool_page")
                comparison.groups["tool"] = list(context["tool_page"].object_list)
            if comparison.comparable_cases:
                # Failed in base and right in other (the row is base's failure), and the reverse.
                context["case_tables"] = []
                for key, label, cases, run in (("regressed", "Regressed", selectors.cases_regressed, other),
                                               ("fixed", "Fixed", selectors.cases_fixed, base)):
                    # Case ids in numeric order (2 before 10): shorter ids first, then by text.
                    ordered = cases(base=base, other=other).order_by(Length("record_id"), "record_id")
                    page = paginate(request, ordered, CASE_PAGE_SIZE, param=f"{key}_page")
                    page.object_list = _link_examples(base, list(page.object_list))
                    context["case_tables"].append((key, label, page, run))
            context["comparison"] = comparison
            context["charts"] = {
                key: {"labels": [r.label for r in rows][:selectors.CHART_LIMIT],
                      "base": [r.base_exact for r in rows][:selectors.CHART_LIMIT],
                      "other": [r.other_exact for r in rows][:selectors.CHART_LIMIT]}
                for key, rows in comparison.groups.items() if key != "tool"
            }
            if "category" in context["charts"]:
                names = [r.name for r in comparison.groups["category"]][:selectors.CHART_LIMIT]
                context["charts"]["category"].update(selectors.target_series(names))
    context["min_cases"] = MIN_GROUP_CASES
    status = 422 if "error" in context else 200
    return render(request, "evaluation/compare.html", context, status=status)


# --- actions on one failure: send it to review, make a training example of it -------------------

BEHAVIOR_OF_EXPECTED = (("steps", "sequence"), ("calls", "call"), ("required_fields", "ask_for_details"))


def _require_actor(request: HttpRequest, view_name: str) -> None:
    if not request_roles(request) & set(ACT_ROLES):
        deny(request, needed=ACT_ROLES, view_name=view_name)
        raise PermissionDenied("this action needs the ml_orchestrator or reviewer role")


def _failure_or_404(run_id: int, failure_id: int) -> EvalFailure:
    found = EvalFailure.objects.select_related("run__suite").filter(run_id=run_id, pk=failure_id).first()
    if found is None:
        raise Http404(f"evaluation {run_id} has no failure {failure_id}")
    return found


def _refused(request: HttpRequest, failure: EvalFailure, message: str, status: int) -> HttpResponse:
    return render(request, "evaluation/failure_action_refused.html",
                  {"nav_section": "evaluation", "failure": failure, "run": failure.run, "message": message},
                  status=status)


@login_required
@require_POST
def failure_send_to_review(request: HttpRequest, run_id: int, failure_id: int) -> HttpResponse:
    """A case that came from a failed production interaction goes (back) to the review queue:
    the item it has already, or a new one through the review service."""
    from ftops.datasets.models import TrainingExample
    from review.models import ReviewItem
    from review.services import review_items_enqueue_interactions

    _require_actor(request, "evaluation:failure-review")
    failure = _failure_or_404(run_id, failure_id)
    example_id = _link_examples(failure.run, [failure])[0].example_id  # type: ignore[attr-defined]
    interaction = (TrainingExample.objects.filter(pk=example_id).select_related("interaction")
                   .values_list("interaction_id", "interaction__is_failure").first() if example_id else None)
    if not interaction or interaction[0] is None:
        return _refused(request, failure, "This case does not come from a production interaction, so there is "
                        "nothing to review: open its training example to correct the expected answer.", 409)
    interaction_id, is_failure = interaction
    item = ReviewItem.objects.filter(interaction_id=interaction_id).values_list("pk", flat=True).first()
    if item is None and is_failure:
        review_items_enqueue_interactions(interaction_ids=[interaction_id])
        item = ReviewItem.objects.filter(interaction_id=interaction_id).values_list("pk", flat=True).first()
        if item is not None:
            messages.success(request, f"Case {failure.record_id} is in the review queue as item #{item}.")
    if item is None:
        return _refused(request, failure, "The interaction behind this case was a success, and the review queue "
                        "holds failures only: open its training example to correct the expected answer.", 409)
    return redirect("review:item", item)


@login_required
@require_POST
def failure_make_example(request: HttpRequest, run_id: int, failure_id: int) -> HttpResponse:
    """A training example of this case with its expected answer (validated against the catalog's
    schemas by the datasets service; making it twice returns the first one)."""
    from ftops.datasets.services.examples import example_create

    _require_actor(request, "evaluation:failure-example")
    failure = _failure_or_404(run_id, failure_id)
    expected = failure.expected if isinstance(failure.expected, dict) else {}
    behavior = failure.behavior or next((b for key, b in BEHAVIOR_OF_EXPECTED if key in expected), "")
    if not failure.service or not failure.user_query or not behavior:
        return _refused(request, failure, "This case lacks a service, a request or an expected behaviour, "
                        "so it cannot become a training example.", 422)
    try:
        example = example_create(
            service=failure.service, tool=failure.tool or None, user_query=failure.user_query,
            behavior=behavior, expected=expected, source="manual", quality="medium",
            provenance={"evaluation_run": failure.run_id, "case": failure.record_id},
            actor=actor_for(request).label,
        )
    except FtopsError as exc:
        details = "; ".join(f"{field}: {', '.join(map(str, problems))}" for field, problems in exc.fields.items())
        return _refused(request, failure, f"No example made: {exc.message}" + (f" ({details})" if details else ""),
                        exc.status_code if 400 <= exc.status_code < 500 else 422)
    messages.success(request, f"Training example #{example.pk} holds case {failure.record_id}.")
    return redirect("datasets:example", example.pk)
