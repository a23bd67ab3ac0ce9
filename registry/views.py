"""Registry pages: versions, one version (lineage, comparison, gates, decisions, timeline),
a training run's registration, and the versions an example trained.

Function views: access check -> validate -> one service -> render. Reading needs the
approver, ml_orchestrator or reviewer role; approve, reject, override, promote and rollback
need the approver role (the services also apply the two-person rule); registering and
evaluating a run need ml_orchestrator. A refused or impossible decision is answered with the
service's message and its 4xx status, never a 500. With htmx the release panel (status,
buttons, deployments, timeline) comes back as a partial; without JavaScript every form is a
plain POST that redirects back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from ftops.common.actors import actor_for
from ftops.common.auth import deny, request_roles
from ftops.common.errors import FtopsError, NotFound
from ftops.common.models import Role
from ftops.common.views import paginate
from registry import page_selectors, selectors, services
from registry.forms import AWAITING, ApproveForm, OverrideForm, PromoteForm, RejectForm, RollbackForm, VersionFilterForm
from registry.models import ENTERPRISE_SCOPE, ModelVersion, ReleaseDecision, VersionStatus

READ_ROLES = [Role.APPROVER.value, Role.ML_ORCHESTRATOR.value, Role.REVIEWER.value]
DECIDE_ROLES = [Role.APPROVER.value]
OPERATE_ROLES = [Role.ML_ORCHESTRATOR.value]
PAGE_SIZE = 25
S = VersionStatus
DECIDABLE = (S.GATES_PASSED, S.GATES_BLOCKED)
REJECTABLE = (S.REGISTERED, S.EVALUATED, S.GATES_PASSED, S.GATES_BLOCKED, S.APPROVED, S.ROLLED_BACK)
PROMOTABLE = (S.APPROVED, S.CANARY, S.PRODUCTION)


def _require(request: HttpRequest, roles: list[str], view_name: str) -> None:
    if not request_roles(request) & set(roles):
        deny(request, needed=roles, view_name=view_name)
        raise PermissionDenied(f"this needs one of the roles {', '.join(roles)}")


def _version_or_404(version_id: int) -> ModelVersion:
    try:
        return selectors.model_version_get(model_version_id=version_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc


def _form_error(form: forms.Form) -> str:
    return " ".join(str(e) for errors in form.errors.values() for e in errors)


@require_GET
@login_required
def version_list(request: HttpRequest) -> HttpResponse:
    _require(request, READ_ROLES, "registry:models")
    filter_form = VersionFilterForm(request.GET)
    filters = filter_form.filters()
    if filters["status"] == AWAITING:
        versions = selectors.model_versions_list(scope=filters["scope"]).filter(
            status__in=selectors.AWAITING_APPROVAL)
    else:
        versions = selectors.model_versions_list(**filters)
    page = paginate(request, versions, PAGE_SIZE)
    rows = list(page.object_list)
    lines = page_selectors.sparklines(rows)
    page.object_list = [{"version": v, "spark_id": f"spark-{v.pk}",
                         "spark": page_selectors.sparkline_chart(lines[v.pk]) if len(lines[v.pk]) > 1 else None,
                         "exact": v.overall_exact} for v in rows]
    context = {"nav_section": "registry", "page": page, "filter_form": filter_form, "filters": filters,
               "production": page_selectors.production_rows(), "awaiting": page_selectors.awaiting_count(),
               "status_choices": S.choices, "scopes": page_selectors.scopes_in_use()}
    return render(request, "registry/versions.html", context)


def _detail_context(request: HttpRequest, version: ModelVersion, **extra: Any) -> dict[str, Any]:
    roles = request_roles(request)
    report = selectors.gate_report_latest(model_version=version)
    serving_in = [d.scope for d in version.deployments.filter(state="production").order_by("scope")]
    can_decide = bool(roles & set(DECIDE_ROLES))
    context: dict[str, Any] = {
        "nav_section": "registry", "version": version, "report": report,
        "lineage": selectors.lineage(model_version=version),
        "checks": page_selectors.gate_rows(report=report),
        "comparison": page_selectors.version_comparison(version=version, report=report),
        "config": page_selectors.version_config(version=version),
        "deployments": page_selectors.version_deployments(version=version),
        "timeline": page_selectors.version_timeline(version=version),
        "approvals": selectors.model_version_approvals(model_version=version),
        "serving_in": serving_in,
        "can_decide": can_decide, "can_operate": bool(roles & set(OPERATE_ROLES)),
        "decidable": version.status in DECIDABLE, "blocked": version.status == S.GATES_BLOCKED,
        "rejectable": version.status in REJECTABLE, "promotable": version.status in PROMOTABLE,
        "re_approvable": version.status == S.ROLLED_BACK,
        "partial": report is not None and report.decision == ReleaseDecision.PARTIAL,
        "default_scope": version.scope or ENTERPRISE_SCOPE,
        "approve_form": ApproveForm(), "override_form": OverrideForm(), "reject_form": RejectForm(),
        "rollback_form": RollbackForm(),
    }
    context.update(extra)
    return context


@require_GET
@login_required
def version_detail(request: HttpRequest, version_id: int) -> HttpResponse:
    _require(request, READ_ROLES, "registry:version")
    version = _version_or_404(version_id)
    context = _detail_context(request, version)
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "registry/version.html#release", context)
    return render(request, "registry/version.html", context)


def _decide(request: HttpRequest, version_id: int, *, view_name: str, form_class: type[forms.Form],
            act: Callable[[ModelVersion, dict[str, Any]], str]) -> HttpResponse:
    """One approver decision: role, form, the service (through ``act``), then the release panel.

    ``act`` returns the success message. A service refusal (two-person rule, wrong status,
    failed gates without a justification, a racing promotion) keeps its status code and
    message, and the panel is shown again with the message in it.
    """
    _require(request, DECIDE_ROLES, view_name)
    version = _version_or_404(version_id)
    form = form_class(request.POST)
    status, error, notice = 200, "", ""
    if not form.is_valid():
        status, error = 422, _form_error(form)
    else:
        try:
            notice = act(version, form.cleaned_data)
        except FtopsError as exc:
            status, error = exc.status_code, exc.message
    version = _version_or_404(version_id)
    if request.htmx:  # type: ignore[attr-defined]
        context = _detail_context(request, version, error=error, notice=notice)
        if error and form_class is OverrideForm:
            context["override_form"] = form
        return render(request, "registry/version.html#release", context, status=status)
    if error:
        context = _detail_context(request, version, error=error)
        return render(request, "registry/version.html", context, status=status)
    messages.success(request, notice)
    return redirect("registry:version", version_id=version.pk)


@require_POST
@login_required
def version_approve(request: HttpRequest, version_id: int) -> HttpResponse:
    def act(version: ModelVersion, data: dict[str, Any]) -> str:
        services.model_version_approve(model_version_id=version.pk, by=actor_for(request), comment=data["comment"])
        return f"{version.name} approved."

    return _decide(request, version_id, view_name="registry:approve", form_class=ApproveForm, act=act)


@require_POST
@login_required
def version_override(request: HttpRequest, version_id: int) -> HttpResponse:
    def act(version: ModelVersion, data: dict[str, Any]) -> str:
        was_blocked = version.status == S.GATES_BLOCKED
        services.model_version_approve(model_version_id=version.pk, by=actor_for(request), comment=data["comment"],
                                       override_justification=data["justification"])
        if was_blocked:
            return f"{version.name} approved as an override of its failed gates; the admins are told."
        return f"{version.name} approved again; it may be promoted."

    return _decide(request, version_id, view_name="registry:override", form_class=OverrideForm, act=act)


@require_POST
@login_required
def version_reject(request: HttpRequest, version_id: int) -> HttpResponse:
    def act(version: ModelVersion, data: dict[str, Any]) -> str:
        services.model_version_reject(model_version_id=version.pk, by=actor_for(request), comment=data["comment"])
        return f"{version.name} rejected."

    return _decide(request, version_id, view_name="registry:reject", form_class=RejectForm, act=act)


@require_POST
@login_required
def version_promote(request: HttpRequest, version_id: int) -> HttpResponse:
    def act(version: ModelVersion, data: dict[str, Any]) -> str:
        scope = data["scope"].strip() or version.scope
        services.model_version_promote(model_version_id=version.pk, by=actor_for(request), scope=scope,
                                       reason=data["reason"])
        return f"{version.name} is in production for {scope}."

    return _decide(request, version_id, view_name="registry:promote", form_class=PromoteForm, act=act)


@require_POST
@login_required
def version_promote_partial(request: HttpRequest, version_id: int) -> HttpResponse:
    def act(version: ModelVersion, data: dict[str, Any]) -> str:
        services.model_version_promote_partial(model_version_id=version.pk, by=actor_for(request),
                                               reason=data["reason"])
        return f"{version.name} is in production for the services that pass their gates."

    return _decide(request, version_id, view_name="registry:promote_partial", form_class=PromoteForm, act=act)


@require_POST
@login_required
def version_rollback(request: HttpRequest, version_id: int) -> HttpResponse:
    def act(version: ModelVersion, data: dict[str, Any]) -> str:
        restored = services.model_version_rollback(model_version_id=version.pk, by=actor_for(request),
                                                   reason=data["reason"], scope=data["scope"].strip())
        return f"Rolled back: {restored.name} serves again."

    return _decide(request, version_id, view_name="registry:rollback", form_class=RollbackForm, act=act)


@require_POST
@login_required
def version_evaluate(request: HttpRequest, version_id: int) -> HttpResponse:
    _require(request, OPERATE_ROLES, "registry:evaluate")
    version = _version_or_404(version_id)
    try:
        services.model_version_evaluate(model_version_id=version.pk, by=actor_for(request))
    except FtopsError as exc:
        context = _detail_context(request, _version_or_404(version_id), error=exc.message)
        return render(request, "registry/version.html", context, status=exc.status_code)
    messages.success(request, "Evaluation started: the candidate and its baseline on the same test split.")
    return redirect("registry:version", version_id=version.pk)


# --------------------------------------------------------------------------- training runs


def _run_or_404(run_id: int) -> Any:
    from ftops.training.selectors import training_run_get

    try:
        return training_run_get(run_id=run_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc


@require_GET
@login_required
def run_version(request: HttpRequest, run_id: int) -> HttpResponse:
    """A training run's model version: there when registered, else the offer to register it."""
    _require(request, READ_ROLES, "registry:run")
    run = _run_or_404(run_id)
    version = page_selectors.versions_for_run_page(training_run_id=run.pk)
    if version is not None:
        return redirect("registry:version", version_id=version.pk)
    return render(request, "registry/run.html", {
        "nav_section": "registry", "run": run, "can_operate": bool(request_roles(request) & set(OPERATE_ROLES)),
        "registrable": run.status == "succeeded"})


@require_POST
@login_required
def run_register(request: HttpRequest, run_id: int) -> HttpResponse:
    """Register and evaluate: the version, then its evaluation against production (or the base)."""
    _require(request, OPERATE_ROLES, "registry:run_register")
    run = _run_or_404(run_id)
    by = actor_for(request)
    try:
        version = services.model_version_register_for_run(training_run_id=run.pk, by=by)
    except FtopsError as exc:
        return render(request, "registry/run.html", {
            "nav_section": "registry", "run": run, "can_operate": True, "registrable": False,
            "error": exc.message}, status=exc.status_code)
    try:
        if version.status == S.REGISTERED and version.eval_run_id is None:
            services.model_version_evaluate(model_version_id=version.pk, by=by)
    except FtopsError as exc:
        messages.warning(request, f"{version.name} is registered; its evaluation did not start: {exc.message}")
    else:
        messages.success(request, f"{version.name} is registered and its evaluation has started.")
    return redirect("registry:version", version_id=version.pk)


# --------------------------------------------------------------------------- examples


@require_GET
@login_required
def example_versions(request: HttpRequest, example_id: int) -> HttpResponse:
    """Lineage from the data side: every model version this example trained."""
    _require(request, READ_ROLES, "registry:example")
    from ftops.datasets.selectors import example_get

    try:
        example = example_get(example_id=example_id)
    except NotFound as exc:
        raise Http404(str(exc)) from exc
    page = paginate(request, selectors.model_versions_for_example(example_id=example.pk), PAGE_SIZE)
    return render(request, "registry/example.html", {"nav_section": "registry", "example": example, "page": page})
