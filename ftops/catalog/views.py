"""Catalog pages: services, a service's tools, a tool's schema versions and their diffs."""

from __future__ import annotations

import json

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from ftops.catalog.selectors import (
    service_get,
    service_vocabulary_of,
    services_list,
    tool_get,
    tool_versions,
    tools_for_service,
)
from ftops.common.errors import NotFound
from ftops.core.vocabulary import vocabulary_rules

PAGE_SIZE = 25


@login_required
def services(request: HttpRequest) -> HttpResponse:
    page = Paginator(services_list(), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "catalog/services.html", {"page": page, "nav_section": "catalog"})


@login_required
def service_detail(request: HttpRequest, service: str) -> HttpResponse:
    try:
        svc = service_get(name=service)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    page = Paginator(tools_for_service(service=svc), PAGE_SIZE).get_page(request.GET.get("page"))
    # The vocabulary few-shot prompts and training state: the service's and its tools' documents folded.
    gathered = service_vocabulary_of(service=svc)
    vocabulary = json.dumps(gathered, indent=2, ensure_ascii=False) if gathered else ""
    return render(request, "catalog/service_detail.html",
                  {"service": svc, "page": page, "vocabulary_json": vocabulary, "nav_section": "catalog",
                   "vocabulary_rules": vocabulary_rules({svc.name: gathered})})


@login_required
def tool_detail(request: HttpRequest, service: str, tool: str) -> HttpResponse:
    try:
        found = tool_get(service_name=service, tool_name=tool)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    page = Paginator(tool_versions(tool=found), PAGE_SIZE).get_page(request.GET.get("page"))
    versions = [(v, json.dumps(v.parameters, indent=2, ensure_ascii=False)) for v in page.object_list]
    return render(request, "catalog/tool_detail.html",
                  {"tool": found, "page": page, "versions": versions, "nav_section": "catalog"})
