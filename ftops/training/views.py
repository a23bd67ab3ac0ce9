"""Pages: training runs, and one run with live progress, loss chart, log tail and cancel."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from ftops.common.actors import actor_for
from ftops.common.auth import deny, request_roles
from ftops.common.errors import FtopsError, NotFound
from ftops.common.models import Role
from ftops.training import selectors
from ftops.training.models import RunStatus, TrainingRun
from ftops.training.services import training_run_cancel

READ_ROLES = [Role.ML_ORCHESTRATOR.value, Role.APPROVER.value, Role.REVIEWER.value]
WRITE_ROLES = [Role.ML_ORCHESTRATOR.value]
PAGE_SIZE = 25
LIST_DEFERRED = ("loss_series", "val_loss_series", "log_tail", "config", "artifact", "external_ids")


def _require(request: HttpRequest, roles: list[str], view_name: str) -> None:
    if not request_roles(request) & set(roles):
        deny(request, needed=roles, view_name=view_name)
        raise PermissionDenied(f"this page needs one of the roles {', '.join(roles)}")


def _run_or_404(run_id: int) -> TrainingRun:
    try:
        return selectors.training_run_get(run_id=run_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc


def _chart(run: TrainingRun) -> dict[str, Any]:
    return {"loss": run.loss_series or [], "val_loss": run.val_loss_series or []}


@login_required
def run_list(request: HttpRequest) -> HttpResponse:
    _require(request, READ_ROLES, "training:runs")
    status = request.GET.get("status", "")
    if status not in RunStatus.values:
        status = ""
    # The list shows none of the big columns (loss curves, log tail, config): leave them in the database.
    runs = selectors.training_runs_list(status=status or None).defer(*LIST_DEFERRED)
    page = Paginator(runs, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "training/runs.html", {
        "nav_section": "training", "page": page, "status": status, "status_choices": RunStatus.choices,
    })


@login_required
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    _require(request, READ_ROLES, "training:run")
    run = _run_or_404(run_id)
    context = {"nav_section": "training", "run": run, "chart": _chart(run),
               "can_cancel": bool(request_roles(request) & set(WRITE_ROLES)) and run.is_active}
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "training/run_detail.html#progress", context)
    return render(request, "training/run_detail.html", context)


@login_required
@require_POST
def run_cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    _require(request, WRITE_ROLES, "training:cancel")
    run = _run_or_404(run_id)
    try:
        run = training_run_cancel(run_id=run.pk, actor=actor_for(request))
    except FtopsError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Cancelled." if run.status == RunStatus.CANCELLED
                         else "Cancel requested; the run stops after its current step.")
    return redirect("training:run", run_id=run.pk)
