"""REST API for the catalog: imports (admin, ml_orchestrator) and read-only listings.

Imports over the API take an MCP server URL or the content inline. Local file paths and
stdio commands are refused on purpose: they would let an API caller read the server's
files or run programs on it; those stay with ``manage.py catalog_import``.

Inline content is imported in the request (201/200 with the report); with a broker
configured, per-tool documents that carry examples are a job as well (202), because curation's
worker writes their examples. A URL import is always a job (202 with its status URL):
contacting a server can take up to the outbound time limit, and that must not hold a web
worker. The job's error for an unusable URL is one message whatever
the reason (refused, unreachable, timed out, not MCP); the reason is in the audit log.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ftops.catalog.importers import FILE_FORMATS
from ftops.catalog.models import CatalogImportJob, Service, Tool, ToolSchemaVersion
from ftops.catalog.selectors import (
    import_job_get,
    service_get,
    services_list,
    tool_get,
    tool_versions,
    tools_for_service,
)
from ftops.catalog.services import catalog_import, catalog_import_job_create
from ftops.common.actors import actor_for
from ftops.common.auth import has_role
from ftops.common.models import Role
from ftops.common.schema import paginated

CanImport = has_role(Role.ADMIN, Role.ML_ORCHESTRATOR)


class CatalogImportInSerializer(serializers.Serializer):
    url = serializers.URLField(required=False, max_length=2000,
                               help_text="An MCP server's streamable-HTTP URL, e.g. https://h/mcp (a job)")
    content = serializers.JSONField(required=False, help_text="Per-tool documents, an OpenAI tools list or BFCL docs")
    format = serializers.ChoiceField(choices=FILE_FORMATS, required=False,
                                     help_text="Format of 'content'; detected when left out")
    service = serializers.CharField(required=False, max_length=100,
                                    help_text="Service name (required for an OpenAI tools list)")
    source = serializers.CharField(  # type: ignore[assignment]  # a field named like Field.source
        required=False, max_length=300, help_text="A label for inline content")
    skip_invalid = serializers.BooleanField(default=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        has_url, has_content = "url" in attrs, "content" in attrs
        if has_url == has_content:
            raise serializers.ValidationError(
                {"non_field_errors": ["give exactly one of 'url' (an MCP server) or 'content' (inline JSON)"]})
        if has_url and attrs.get("format"):
            raise serializers.ValidationError({"format": ["'format' describes 'content'; leave it out with 'url'"]})
        return attrs


class CatalogImportOutSerializer(serializers.Serializer):
    source = serializers.CharField()  # type: ignore[assignment]
    format = serializers.CharField()
    changed = serializers.BooleanField()
    services_created = serializers.ListField(child=serializers.CharField())
    services_updated = serializers.ListField(child=serializers.CharField())
    tools_created = serializers.ListField(child=serializers.CharField())
    versions_created = serializers.ListField(child=serializers.DictField())
    tools_unchanged = serializers.IntegerField()
    examples_created = serializers.IntegerField()
    examples_existing = serializers.IntegerField()
    examples_skipped = serializers.ListField(child=serializers.DictField())
    examples_migrated = serializers.IntegerField()
    examples_flagged = serializers.IntegerField()
    duplicates = serializers.ListField(child=serializers.CharField())
    notes = serializers.ListField(child=serializers.CharField(), default=list)
    job = serializers.IntegerField(allow_null=True, default=None,
                                   help_text="The import job that ran (or runs) this import")
    pending = serializers.BooleanField(default=False, help_text="True: a worker writes the examples; follow the job")


class CatalogImportJobOutSerializer(serializers.ModelSerializer):
    status_url = serializers.SerializerMethodField()
    result = CatalogImportOutSerializer(allow_null=True, help_text="The import report once it succeeded")
    error = serializers.JSONField(allow_null=True, help_text="{code, message, fields?} once it failed")

    class Meta:
        model = CatalogImportJob
        fields = ["id", "kind", "status", "status_url", "source", "service", "skip_invalid", "actor", "attempts",
                  "created_at", "started_at", "finished_at", "result", "error"]

    def get_status_url(self, job: CatalogImportJob) -> str:
        path = reverse("catalog-import-job", args=[job.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path

    def to_representation(self, instance: CatalogImportJob) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["error"] = instance.error or None
        counts = instance.progress_counts or {}
        if data.get("result") and ("examples_migrated" in counts or "examples_flagged" in counts):
            # A worker moved older examples after the import (broker mode); see catalog_import_job_record_migration.
            for key in ("examples_migrated", "examples_flagged"):
                data["result"][key] = int(data["result"].get(key) or 0) + int(counts.get(key) or 0)
        return data


class CatalogImportApi(APIView):
    """Import tools (and per-tool examples) from inline content now, or from an MCP server URL as a job."""

    permission_classes = [CanImport]

    @extend_schema(operation_id="catalog_import", request=CatalogImportInSerializer,
                   responses={201: CatalogImportOutSerializer, 200: CatalogImportOutSerializer,
                              202: CatalogImportJobOutSerializer})
    def post(self, request: Request) -> Response:
        data = CatalogImportInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        actor = actor_for(request)
        if "url" in v:
            job = catalog_import_job_create(url=v["url"], service=v.get("service"), skip_invalid=v["skip_invalid"],
                                            by=actor)
            job.refresh_from_db()  # an in-process worker (no broker configured) may have finished it already
            body = CatalogImportJobOutSerializer(job, context={"request": request}).data
            return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["status_url"]})
        report = catalog_import(source=v.get("source") or "api:inline", fmt=v.get("format"), content=v["content"],
                                service=v.get("service"), skip_invalid=v["skip_invalid"], by=actor)
        if report.pending and report.job is not None:
            # A broker is configured: a worker writes the examples; the job has the counts when done.
            body = CatalogImportJobOutSerializer(import_job_get(job_id=report.job), context={"request": request}).data
            return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["status_url"]})
        return Response(CatalogImportOutSerializer(report.as_dict()).data,
                        status=status.HTTP_201_CREATED if report.changed else status.HTTP_200_OK)


class CatalogImportJobApi(APIView):
    """One URL import job: its status, and the report or the error once it finished."""

    permission_classes = [CanImport]

    @extend_schema(operation_id="catalog_import_job", responses={200: CatalogImportJobOutSerializer})
    def get(self, request: Request, job_id: int) -> Response:
        return Response(CatalogImportJobOutSerializer(import_job_get(job_id=job_id), context={"request": request}).data)


class CatalogServiceOutSerializer(serializers.ModelSerializer):
    tool_count = serializers.IntegerField()

    class Meta:
        model = Service
        fields = ["id", "name", "display_name", "description", "version", "source", "tool_count", "created_at"]


class ToolSchemaVersionOutSerializer(serializers.ModelSerializer):
    class Meta:
        model = ToolSchemaVersion
        fields = ["number", "description", "parameters", "inferred", "change", "diff", "content_hash", "source",
                  "created_at"]


class CatalogToolOutSerializer(serializers.ModelSerializer):
    service = serializers.CharField(source="service.name")
    current_version = serializers.IntegerField(source="current_version.number", default=None)
    parameters = serializers.JSONField(source="current_version.parameters", default=None)
    inferred = serializers.BooleanField(source="current_version.inferred", default=None)
    version_count = serializers.IntegerField()

    class Meta:
        model = Tool
        fields = ["id", "service", "name", "description", "current_version", "parameters", "inferred",
                  "version_count"]


def _page(view: APIView, request: Request, queryset: Any, serializer: type[serializers.BaseSerializer]) -> Response:
    paginator = LimitOffsetPagination()
    page: list[Any] | None = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer(page, many=True).data)


class ServicesApi(APIView):
    """Services with their tool counts."""

    @extend_schema(operation_id="catalog_services_list", responses={200: paginated(CatalogServiceOutSerializer)})
    def get(self, request: Request) -> Response:
        return _page(self, request, services_list(), CatalogServiceOutSerializer)


class ServiceToolsApi(APIView):
    """A service's tools with their current schema."""

    @extend_schema(operation_id="catalog_tools_list", responses={200: paginated(CatalogToolOutSerializer)})
    def get(self, request: Request, service: str) -> Response:
        return _page(self, request, tools_for_service(service=service_get(name=service)), CatalogToolOutSerializer)


class ToolVersionsApi(APIView):
    """Every schema version of a tool, newest first, with the diff from the one before."""

    @extend_schema(operation_id="catalog_tool_versions_list",
                   responses={200: paginated(ToolSchemaVersionOutSerializer)})
    def get(self, request: Request, service: str, tool: str) -> Response:
        return _page(self, request, tool_versions(tool=tool_get(service_name=service, tool_name=tool)),
                     ToolSchemaVersionOutSerializer)
