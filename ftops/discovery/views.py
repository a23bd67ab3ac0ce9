"""Public ``.well-known`` documents (metadata only) and the per-service publishing page.

The page needs a session login with the admin or ml_orchestrator role (staff act with every role).
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from ftops.catalog.models import Service
from ftops.common.actors import actor_for
from ftops.common.auth import deny, request_roles
from ftops.common.errors import ValidationFailed
from ftops.common.models import Role
from ftops.discovery import selectors, services

EDITORS = [str(Role.ADMIN), str(Role.ML_ORCHESTRATOR)]


def _base_url(request: HttpRequest) -> str:
    return request.build_absolute_uri("/").rstrip("/")


def _json(body: dict[str, object], *, status: int = 200) -> JsonResponse:
    response = JsonResponse(body, status=status, json_dumps_params={"indent": 2})
    response["Cache-Control"] = "public, max-age=300"
    return response


@require_GET
def well_known(request: HttpRequest) -> JsonResponse:
    """The index of services, or one service's document with ``?service=``."""
    name = request.GET.get("service")
    if name:
        service = Service.objects.filter(name=name).first()
        if service is None:
            return _json({"error": {"code": "not_found", "message": f"no service named {name!r}"}}, status=404)
        return _json(selectors.well_known_document(service, base_url=_base_url(request)))
    return _json(selectors.well_known_index(base_url=_base_url(request)))


@require_GET
def well_known_service(request: HttpRequest, name: str) -> JsonResponse:
    service = Service.objects.filter(name=name).first()
    if service is None:
        return _json({"error": {"code": "not_found", "message": f"no service named {name!r}"}}, status=404)
    return _json(selectors.well_known_document(service, base_url=_base_url(request)))


class PublishingForm(forms.Form):
    share_with_orchestrators = forms.BooleanField(
        required=False, label="Share examples with ML orchestrator keys (PII redacted)")
    public_model_training = forms.BooleanField(required=False, label="Consent to public model training")
    opt_in_text = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), max_length=2000)
    restrictions = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}),
                                   help_text="One restriction per line", max_length=4000)
    contact_team = forms.CharField(required=False, max_length=200)
    contact_documentation = forms.URLField(required=False, max_length=500)


def _require_editor(request: HttpRequest) -> None:
    if not request_roles(request) & set(EDITORS):
        deny(request, needed=EDITORS, view_name="discovery.publishing")
        raise PermissionDenied(f"this needs one of the roles {', '.join(EDITORS)}")


@login_required
@require_GET
def publishing_list(request: HttpRequest) -> HttpResponse:
    _require_editor(request)
    rows = [(s, selectors.publishing_for(s)) for s in Service.objects.order_by("name")]
    return render(request, "discovery/publishing_list.html", {"rows": rows, "nav_section": "discovery"})


@login_required
@require_http_methods(["GET", "POST"])
def publishing_edit(request: HttpRequest, name: str) -> HttpResponse:
    _require_editor(request)
    service = Service.objects.filter(name=name).first()
    if service is None:
        raise Http404(f"no service named {name!r}")
    current = selectors.publishing_for(service)
    if request.method == "POST":
        form = PublishingForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                services.publishing_settings_update(
                    service=service, by=actor_for(request),
                    share_with_orchestrators=data["share_with_orchestrators"],
                    public_model_training=data["public_model_training"], opt_in_text=data["opt_in_text"],
                    restrictions=data["restrictions"].splitlines(), contact_team=data["contact_team"],
                    contact_documentation=data["contact_documentation"])
            except ValidationFailed as exc:
                for field, problems in (exc.fields or {}).items():
                    for problem in problems:
                        form.add_error(field if field in form.fields else None, problem)
            else:
                messages.success(request, f"Publishing settings of {service.name} saved.")
                return redirect("discovery:publishing_edit", name=service.name)
        status = 400
    else:
        form = PublishingForm(initial={
            "share_with_orchestrators": current.share_with_orchestrators,
            "public_model_training": current.public_model_training, "opt_in_text": current.opt_in_text,
            "restrictions": "\n".join(current.restrictions), "contact_team": current.contact_team,
            "contact_documentation": current.contact_documentation})
        status = 200
    document = selectors.well_known_document(service, base_url=_base_url(request))
    return render(request, "discovery/publishing_edit.html",
                  {"service": service, "form": form, "document": document, "nav_section": "discovery"},
                  status=status)
