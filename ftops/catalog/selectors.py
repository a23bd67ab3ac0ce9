"""Reads for the catalog."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import Count, QuerySet

from ftops.catalog.models import CatalogImportJob, Service, Tool, ToolSchemaVersion
from ftops.common.errors import NotFound
from ftops.core.vocabulary import service_vocabulary

BIGINT_MAX = 2**63 - 1


def tool_schema_map(service: Service) -> dict[str, ToolSchemaVersion]:
    """The current schema version of every tool of ``service``, by tool name."""
    tools = Tool.objects.filter(service=service, current_version__isnull=False).select_related(
        "current_version", "current_version__tool", "current_version__tool__service"
    )
    return {t.name: t.current_version for t in tools if t.current_version is not None}


def tool_owners(*, names: Iterable[str] | None = None) -> dict[str, set[str]]:
    """``{tool name: services that have a tool of that name}``, for resolving examples' calls.

    ``names`` narrows the read to the names an import mentions (a full catalog is thousands).
    """
    rows = Tool.objects.all()
    if names is not None:
        rows = rows.filter(name__in=set(names))
    out: dict[str, set[str]] = {}
    for tool, service in rows.values_list("name", "service__name"):
        out.setdefault(tool, set()).add(service)
    return out


def service_names() -> set[str]:
    return set(Service.objects.values_list("name", flat=True))


def tool_schema_versions(*, refs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], ToolSchemaVersion]:
    """Current schema versions of ``(service, tool)`` pairs that exist (one query)."""
    wanted = set(refs)
    if not wanted:
        return {}
    tools = Tool.objects.filter(name__in={t for _, t in wanted}, service__name__in={s for s, _ in wanted},
                                current_version__isnull=False).select_related(
        "service", "current_version", "current_version__tool", "current_version__tool__service")
    return {(t.service.name, t.name): t.current_version for t in tools
            if (t.service.name, t.name) in wanted and t.current_version is not None}


def service_vocabularies(*, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``{service name: vocabulary}`` for the named services that exist, each folded from the
    service's own document and its tools' (``ftops.core.vocabulary.service_vocabulary``)."""
    services = Service.objects.filter(name__in=set(names)).prefetch_related("tools")
    return {s.name: service_vocabulary(s.domain_vocabulary, {t.name: t.domain_vocabulary for t in s.tools.all()})
            for s in services}


def service_vocabulary_of(*, service: Service) -> dict[str, Any]:
    """The folded vocabulary of a service already read (one query, for its tools' documents)."""
    tools = dict(Tool.objects.filter(service=service).values_list("name", "domain_vocabulary"))
    return service_vocabulary(service.domain_vocabulary, tools)


def services_list() -> QuerySet[Service]:
    return Service.objects.annotate(tool_count=Count("tools", distinct=True)).order_by("name")


def service_get(*, name: str) -> Service:
    service = services_list().filter(name=name).first()
    if service is None:
        raise NotFound(f"no service named {name!r}")
    return service


def tools_for_service(*, service: Service) -> QuerySet[Tool]:
    return (
        Tool.objects.filter(service=service)
        .select_related("service", "current_version")
        .annotate(version_count=Count("versions", distinct=True))
        .order_by("name")
    )


def tool_get(*, service_name: str, tool_name: str) -> Tool:
    tool = (Tool.objects.filter(service__name=service_name, name=tool_name)
            .select_related("service", "current_version").first())
    if tool is None:
        raise NotFound(f"service {service_name!r} has no tool {tool_name!r}")
    return tool


def tool_versions(*, tool: Tool) -> QuerySet[ToolSchemaVersion]:
    return ToolSchemaVersion.objects.filter(tool=tool).select_related("tool", "tool__service").order_by("-number")


def import_job_get(*, job_id: int) -> CatalogImportJob:
    # A path id past the column's range would be a database error (a 500), not "no such job".
    job = CatalogImportJob.objects.filter(pk=job_id).first() if 0 < job_id <= BIGINT_MAX else None
    if job is None:
        raise NotFound(f"no catalog import job {job_id}")
    return job


def catalog_summary() -> dict[str, Any]:
    """For the home dashboard: service names by id (rows elsewhere carry only the id) and the tool count."""
    names = dict(Service.objects.values_list("id", "name"))
    return {"services": len(names), "service_names": names, "tools": Tool.objects.count()}
