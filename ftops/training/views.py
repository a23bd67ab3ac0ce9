"""Pages: training runs, and one run with live progress, loss chart, log tail and cancel."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from ftops.common.actors import actor_for
from ftops.common.auth import deny, request_roles
from ftops.common.errors import FtopsError, NotFound
from ftops.common.models import Role
from ftops.training import selectors
from ftops.training.models import Backend, RunStatus, TrainingRun
from ftops.training.services import training_run_cancel, training_run_create

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
        "can_start": bool(request_roles(request) & set(WRITE_ROLES)),
    })


@login_required
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    _require(request, READ_ROLES, "training:run")
    run = _run_or_404(run_id)
    context = {"nav_section": "training", "run": run, "chart": _chart(run),
               "can_cancel": bool(request_roles(request) & set(WRITE_ROLES)) and run.is_active,
               "can_download": bool(request_roles(request) & set(WRITE_ROLES))}
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


def _new_run_context(request: HttpRequest, values: dict[str, str], error: str = "",
                     fields: dict[str, Any] | None = None) -> dict[str, Any]:
    from ftops.catalog.models import Service
    from ftops.datasets.models import DatasetVersion

    return {
        "nav_section": "training", "values": values, "error": error, "field_errors": fields or {},
        "backends": Backend.choices,
        "versions": list(DatasetVersion.objects.filter(status="ready").order_by("-number")
                         .values_list("number", flat=True)[:50]),
        "services": list(Service.objects.order_by("name").values_list("name", flat=True)[:500]),
    }


@login_required
def run_new(request: HttpRequest) -> HttpResponse:
    """Start a training run from the browser: backend, dataset version, optional service scope;
    the same service the API and ``manage.py train`` call (defaults for everything else)."""
    from ftops.datasets.models import DatasetVersion

    _require(request, WRITE_ROLES, "training:new")
    if request.method != "POST":
        context = _new_run_context(request, {"backend": Backend.FEWSHOT.value})
        if context["versions"]:  # the newest ready version
            context["values"]["dataset_version"] = str(context["versions"][0])
        return render(request, "training/run_new.html", context)
    values = {key: str(request.POST.get(key, "")).strip() for key in ("backend", "dataset_version", "service", "name")}
    version = (DatasetVersion.objects.filter(number=int(values["dataset_version"])).first()
               if values["dataset_version"].isdigit() else None)
    try:
        run = training_run_create(backend=values["backend"], dataset_version=version, service=values["service"],
                                  name=values["name"][:200], actor=actor_for(request))
    except FtopsError as exc:
        return render(request, "training/run_new.html",
                      _new_run_context(request, values, exc.message, exc.fields), status=422)
    messages.success(request, f"Training run #{run.pk} is queued.")
    return redirect("training:run", run_id=run.pk)


@login_required
def run_artifact(request: HttpRequest, run_id: int) -> HttpResponseBase:
    """The run's artifact as a download: the file, or the adapter folder as a zip. The path is
    the run's own, and it must resolve inside the artifacts folder (ARCHITECTURE.md rule 15)."""
    import tempfile
    import zipfile
    from pathlib import Path

    from django.conf import settings
    from django.http import FileResponse

    from ftops.common.services import audit_record

    _require(request, WRITE_ROLES, "training:artifact")
    run = _run_or_404(run_id)
    root = Path(settings.ARTIFACTS_DIR).resolve()
    try:
        target = Path(run.artifact_path).resolve() if run.artifact_path else None
    except (OSError, RuntimeError, ValueError):
        target = None
    if target is None or not target.is_relative_to(root) or not target.exists():
        raise Http404(f"training run {run.pk} has no artifact on this server")
    audit_record(action="training.artifact_downloaded", by=actor_for(request), object_type="training_run",
                 object_id=run.pk, detail={"path": str(target.relative_to(root))})
    if target.is_file():
        return FileResponse(target.open("rb"), as_attachment=True, filename=target.name)
    spool = tempfile.TemporaryFile()  # noqa: SIM115  (FileResponse closes it once sent)
    with zipfile.ZipFile(spool, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(target.rglob("*")):
            # Links are not followed out of the folder: only regular files that stay inside it.
            if path.is_file() and not path.is_symlink() and path.resolve().is_relative_to(target):
                archive.write(path, path.relative_to(target).as_posix())
    spool.seek(0)
    return FileResponse(spool, as_attachment=True, filename=f"training-run-{run.pk}-artifact.zip")
