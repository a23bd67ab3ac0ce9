"""REST API for curation: training examples, schema migrations, paraphrases, dataset versions, exports."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ftops.catalog.models import Tool
from ftops.common.actors import actor_for
from ftops.common.auth import has_role, request_roles
from ftops.common.errors import Forbidden, NotFound, ValidationFailed
from ftops.common.models import ApiKey, AuditAction, Role
from ftops.common.schema import DB_INT_MAX, paginated
from ftops.common.services import actor_label
from ftops.datasets import selectors
from ftops.datasets.exports import FORMATS
from ftops.datasets.models import (
    Behavior,
    CurationRun,
    DatasetVersion,
    ExampleStatus,
    Quality,
    Source,
    Split,
    TrainingExample,
)
from ftops.datasets.services import dataset_version_create, example_create, example_update
from ftops.datasets.services.export import dataset_export
from ftops.datasets.services.runs import curation_run_start
from ftops.datasets.services.schema_evolution import examples_migrate_schema
from ftops.datasets.validation import bad_text

CanCurate = has_role(Role.REVIEWER, Role.ML_ORCHESTRATOR, Role.ADMIN)
CanBuild = has_role(Role.ML_ORCHESTRATOR, Role.ADMIN)


def _actor(request: Request) -> str:
    auth = request.auth if isinstance(request.auth, ApiKey) else None
    return actor_label(user=request.user, api_key=auth)


# --- examples -----------------------------------------------------------------------------


def _storable(value: list[Any]) -> list[Any]:
    """Free-form JSON fields: refuse NUL and lone surrogates here (``expected`` and ``messages``
    are checked by the example validation) so the database never sees them."""
    problem = bad_text(value)
    if problem:
        raise serializers.ValidationError(problem)
    return value


class ExampleInSerializer(serializers.Serializer):
    service = serializers.SlugField(help_text="Service name")
    tool = serializers.CharField(required=False, allow_blank=True, help_text="Primary tool (default: first call)")
    user_query = serializers.CharField()
    messages = serializers.ListField(child=serializers.DictField(), required=False,
                                     help_text="History ending with the user query (default: just the query)")
    tools = serializers.ListField(child=serializers.CharField(), required=False,
                                  help_text="Offered tool names (default: every tool of the service)")
    behavior = serializers.ChoiceField(choices=Behavior.choices)
    expected = serializers.DictField(help_text="Shape depends on behavior; see TrainingExample")
    source = serializers.ChoiceField(  # type: ignore[assignment]  # a field named like Field.source
        choices=[Source.MANUAL, Source.CORRECTION, Source.DISCOVERED], default=Source.MANUAL)
    quality = serializers.ChoiceField(choices=Quality.choices, default=Quality.HIGH)
    explanation = serializers.CharField(required=False, allow_blank=True, default="")
    common_mistakes = serializers.ListField(required=False, default=list)

    def validate_common_mistakes(self, value: list[Any]) -> list[Any]:
        return _storable(value)


class ExampleUpdateInSerializer(serializers.Serializer):
    tool = serializers.CharField(required=False, allow_blank=True)
    user_query = serializers.CharField(required=False)
    messages = serializers.ListField(child=serializers.DictField(), required=False)
    tools = serializers.ListField(child=serializers.CharField(), required=False)
    behavior = serializers.ChoiceField(choices=Behavior.choices, required=False)
    expected = serializers.DictField(required=False)
    explanation = serializers.CharField(required=False, allow_blank=True)
    common_mistakes = serializers.ListField(required=False)
    quality = serializers.ChoiceField(choices=Quality.choices, required=False)
    status = serializers.ChoiceField(choices=ExampleStatus.choices, required=False)

    def validate_common_mistakes(self, value: list[Any]) -> list[Any]:
        return _storable(value)


class ExampleOutSerializer(serializers.ModelSerializer):
    service = serializers.CharField(source="service.name")
    tool = serializers.CharField(source="tool.name", default=None)
    schema_version = serializers.IntegerField(source="schema_version.number", default=None)

    class Meta:
        model = TrainingExample
        fields = ["id", "service", "tool", "schema_version", "user_query", "messages", "tools", "behavior",
                  "expected", "explanation", "common_mistakes", "source", "quality", "status", "interaction",
                  "parent", "provenance", "content_hash", "tool_versions", "created_at", "updated_at"]


class ExampleFilterSerializer(serializers.Serializer):
    service = serializers.CharField(required=False, allow_blank=True)
    tool = serializers.CharField(required=False, allow_blank=True)
    source = serializers.ChoiceField(choices=Source.choices, required=False)  # type: ignore[assignment]
    quality = serializers.ChoiceField(choices=Quality.choices, required=False)
    behavior = serializers.ChoiceField(choices=Behavior.choices, required=False)
    status = serializers.ChoiceField(choices=ExampleStatus.choices, required=False)
    q = serializers.CharField(required=False, allow_blank=True, help_text="Search in the user query")


class ExamplesApi(APIView):
    """GET lists examples (filters, newest first); POST creates one, validated against the tool's schema."""

    permission_classes = [CanCurate]

    @extend_schema(operation_id="examples_list", parameters=[ExampleFilterSerializer],
                   responses={200: paginated(ExampleOutSerializer)})
    def get(self, request: Request) -> Response:
        filters = ExampleFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(selectors.examples_search(**filters.validated_data), request, view=self)
        return paginator.get_paginated_response(ExampleOutSerializer(page, many=True).data)

    @extend_schema(operation_id="examples_create", request=ExampleInSerializer,
                   responses={201: ExampleOutSerializer})
    def post(self, request: Request) -> Response:
        data = ExampleInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        example = example_create(
            service=values.pop("service"), tool=values.pop("tool", "") or None, actor=_actor(request),
            provenance={"created_by": _actor(request), "via": "api"}, **values,
        )
        return Response(ExampleOutSerializer(example).data, status=status.HTTP_201_CREATED)


class ExampleDetailApi(APIView):
    """GET one example; PATCH edits it (the result is validated as a whole)."""

    permission_classes = [CanCurate]

    @extend_schema(operation_id="examples_get", responses={200: ExampleOutSerializer})
    def get(self, request: Request, example_id: int) -> Response:
        return Response(ExampleOutSerializer(selectors.example_get(example_id=example_id)).data)

    @extend_schema(operation_id="examples_update", request=ExampleUpdateInSerializer,
                   responses={200: ExampleOutSerializer})
    def patch(self, request: Request, example_id: int) -> Response:
        example = selectors.example_get(example_id=example_id)
        data = ExampleUpdateInSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        changes = dict(data.validated_data)
        if "tool" in changes and not changes["tool"]:
            changes["tool"] = None
        if not changes:
            raise ValidationFailed("nothing to change", fields={"non_field_errors": ["send at least one field"]})
        example = example_update(example=example, changes=changes, actor=_actor(request))
        return Response(ExampleOutSerializer(selectors.example_get(example_id=example.pk)).data)


class SchemaMigrationInSerializer(serializers.Serializer):
    service = serializers.SlugField()
    tool = serializers.CharField()
    renames = serializers.DictField(child=serializers.CharField(), required=False, default=dict,
                                    help_text="old parameter name -> new parameter name")


class SchemaMigrationOutSerializer(serializers.Serializer):
    tool = serializers.CharField()
    to_version = serializers.IntegerField()
    examined = serializers.IntegerField()
    migrated = serializers.ListField(child=serializers.IntegerField())
    flagged = serializers.DictField()
    unchanged = serializers.IntegerField()


class SchemaMigrationApi(APIView):
    """POST migrates a tool's examples to its current schema (renames, new optional params) or flags them."""

    permission_classes = [CanBuild]

    @extend_schema(operation_id="examples_schema_migrate", request=SchemaMigrationInSerializer,
                   responses={200: SchemaMigrationOutSerializer})
    def post(self, request: Request) -> Response:
        data = SchemaMigrationInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        tool = Tool.objects.filter(service__name=data.validated_data["service"],
                                   name=data.validated_data["tool"]).first()
        if tool is None:
            raise NotFound(f"no tool {data.validated_data['tool']!r} in service {data.validated_data['service']!r}")
        report = examples_migrate_schema(tool=tool, renames=data.validated_data["renames"], actor=_actor(request))
        return Response(report.as_dict())


class ParaphraseInSerializer(serializers.Serializer):
    n = serializers.IntegerField(min_value=1, max_value=20, default=3)


class ParaphraseOutSerializer(serializers.Serializer):
    requested = serializers.IntegerField()
    kept = serializers.ListField(child=serializers.IntegerField())
    rejected = serializers.DictField()


class ExampleParaphrasesApi(APIView):
    """POST asks the configured OpenAI-compatible endpoint for N paraphrases of an example."""

    permission_classes = [CanBuild]

    @extend_schema(operation_id="examples_paraphrase", request=ParaphraseInSerializer,
                   responses={201: ParaphraseOutSerializer})
    def post(self, request: Request, example_id: int) -> Response:
        from ftops.datasets.services.synthetic import examples_paraphrase

        example = selectors.example_get(example_id=example_id)
        data = ParaphraseInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        report = examples_paraphrase(example=example, n=data.validated_data["n"], actor=_actor(request))
        return Response(report.as_dict(), status=status.HTTP_201_CREATED)


# --- dataset versions ---------------------------------------------------------------------


class VersionOutSerializer(serializers.ModelSerializer):
    class Meta:
        model = DatasetVersion
        fields = ["number", "status", "progress", "progress_message", "seed", "params", "content_hash",
                  "source_mix", "counts", "error", "created_by", "created_at", "built_at"]


class VersionDetailOutSerializer(VersionOutSerializer):
    class Meta(VersionOutSerializer.Meta):
        fields = [*VersionOutSerializer.Meta.fields, "quality_report"]


class VersionBuildInSerializer(serializers.Serializer):
    seed = serializers.IntegerField(default=0, min_value=-DB_INT_MAX - 1, max_value=DB_INT_MAX)
    params = serializers.DictField(required=False, default=dict,
                                   help_text="dedup, diversity, rotation, time_holdout_days, services, min_quality")


class VersionsApi(APIView):
    """GET lists dataset versions; POST starts a build on the curation queue (202, poll the version)."""

    permission_classes = [CanCurate]

    @extend_schema(operation_id="datasets_list", responses={200: paginated(VersionOutSerializer)})
    def get(self, request: Request) -> Response:
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(selectors.versions_list(), request, view=self)
        return paginator.get_paginated_response(VersionOutSerializer(page, many=True).data)

    @extend_schema(operation_id="datasets_build", request=VersionBuildInSerializer,
                   responses={202: VersionOutSerializer})
    def post(self, request: Request) -> Response:
        if not request_roles(request) & {Role.ML_ORCHESTRATOR, Role.ADMIN}:
            raise Forbidden("building a dataset version needs the ml_orchestrator or admin role")
        data = VersionBuildInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        version = dataset_version_create(seed=data.validated_data["seed"], params=data.validated_data["params"],
                                         actor=actor_for(request))
        version.refresh_from_db()
        return Response(VersionOutSerializer(version).data, status=status.HTTP_202_ACCEPTED)


class VersionDetailApi(APIView):
    permission_classes = [CanCurate]

    @extend_schema(operation_id="datasets_get", responses={200: VersionDetailOutSerializer})
    def get(self, request: Request, number: str) -> Response:
        return Response(VersionDetailOutSerializer(selectors.version_get(number=number)).data)


class ExportQuerySerializer(serializers.Serializer):
    split = serializers.ChoiceField(choices=Split.choices, default=Split.TRAIN)
    format = serializers.ChoiceField(choices=[(f, f) for f in FORMATS], default="openai")
    dimension = serializers.CharField(required=False, allow_blank=True)


class FormatIsOurs(DefaultContentNegotiation):
    """``?format=`` names the export format here, not a DRF renderer: always answer JSON errors."""

    def select_renderer(self, request: Request, renderers: Iterable[BaseRenderer],
                        format_suffix: str | None = None) -> tuple[BaseRenderer, str]:
        first = next(iter(renderers))
        return first, first.media_type


class VersionExportApi(APIView):
    """GET downloads one split as JSONL (openai or hf). The holdout is for admins only."""

    permission_classes = [CanBuild]
    content_negotiation_class = FormatIsOurs

    @extend_schema(operation_id="datasets_export", parameters=[
        ExportQuerySerializer, OpenApiParameter("number", OpenApiTypes.STR, OpenApiParameter.PATH)],
        responses={(200, "application/jsonl"): OpenApiTypes.STR})
    def get(self, request: Request, number: str) -> HttpResponse:
        query = ExportQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        version = selectors.version_get(number=number)
        split = query.validated_data["split"]
        allow_holdout = split == Split.HOLDOUT and Role.ADMIN in request_roles(request)
        fmt = query.validated_data["format"]
        result = dataset_export(version=version, split=split, fmt=fmt, by=actor_for(request),
                                dimension=query.validated_data.get("dimension") or None,
                                allow_holdout=allow_holdout, action=AuditAction.DATASET_DOWNLOADED, via="api")
        body = "\n".join(result.lines) + ("\n" if result.lines else "")
        response = HttpResponse(body, content_type="application/jsonl; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="dataset-v{version.number}-{split}-{fmt}.jsonl"'
        response["X-Ftops-Lines"] = str(len(result.lines))
        response["X-Ftops-Refused"] = str(len(result.refused))
        return response


# --- curation runs (the triggers they ask for: ftops.loop) -----------------------------------------------------------


class CurationRunInSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=CurationRun.Kind.choices, default=CurationRun.Kind.SCHEDULED)


class CurationRunOutSerializer(serializers.ModelSerializer):
    class Meta:
        model = CurationRun
        fields = ["id", "kind", "status", "progress", "params", "result", "error", "created_at", "finished_at"]


class CurationRunsApi(APIView):
    """POST starts a curation pass on the queue (collect production examples and/or evaluate triggers)."""

    permission_classes = [CanBuild]

    @extend_schema(operation_id="curation_run_start", request=CurationRunInSerializer,
                   responses={202: CurationRunOutSerializer})
    def post(self, request: Request) -> Response:
        data = CurationRunInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        run = curation_run_start(kind=data.validated_data["kind"])
        run.refresh_from_db()
        return Response(CurationRunOutSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class CurationRunDetailApi(APIView):
    permission_classes = [CanBuild]

    @extend_schema(operation_id="curation_run_get", responses={200: CurationRunOutSerializer})
    def get(self, request: Request, run_id: int) -> Response:
        run = CurationRun.objects.filter(pk=run_id).first()
        if run is None:
            raise NotFound(f"curation run {run_id} does not exist")
        return Response(CurationRunOutSerializer(run).data)
