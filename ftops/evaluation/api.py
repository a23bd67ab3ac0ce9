"""REST API for evaluation: suites, runs (create, list, detail, failures) and comparisons."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ftops.common.actors import actor_for
from ftops.common.auth import has_role
from ftops.common.errors import ValidationFailed
from ftops.common.models import Role
from ftops.common.paths import confine_adapter_config
from ftops.common.schema import DB_INT_MAX, paginated
from ftops.evaluation import selectors, services
from ftops.evaluation.models import EvalFailure, EvalRun, EvalSuite, RunStatus

CanRun = has_role(Role.ML_ORCHESTRATOR)
CanRead = has_role(Role.ML_ORCHESTRATOR, Role.APPROVER, Role.REVIEWER)


# --- serializers --------------------------------------------------------------------------------


class SuiteOutSerializer(serializers.ModelSerializer):
    dataset_version = serializers.IntegerField(source="dataset_version.number", default=None)

    class Meta:
        model = EvalSuite
        fields = ["id", "name", "kind", "dataset_version", "split", "case_count", "categories", "created_at"]


class RunCreateInSerializer(serializers.Serializer):
    suite = serializers.CharField(required=False, help_text="Suite id or name (e.g. an imported 'bfcl')")
    dataset_version = serializers.IntegerField(required=False, min_value=1, max_value=DB_INT_MAX,
                                               help_text="Instead of suite: a dataset version number")
    split = serializers.ChoiceField(choices=services.EVAL_SPLITS, default="test",
                                    help_text="Split of dataset_version to score")
    model_version_id = serializers.IntegerField(required=False, min_value=1, max_value=DB_INT_MAX,
                                                help_text="Registry model version")
    adapter_config = serializers.JSONField(
        required=False,
        help_text='Instead of model_version_id, e.g. {"kind": "openai", "credential": "openai-prod", "model": ...} '
                  '(a credential an admin registered; it fixes the endpoint and the key), '
                  '{"kind": "hf_local", "model_path": ..., "adapter_path": ...} or '
                  '{"kind": "replay", "path": "<file inside the artifacts folder>"}. Unknown keys are refused.',
    )
    name = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=DB_INT_MAX,
                                     help_text="Score only the first N cases")
    categories = serializers.ListField(child=serializers.CharField(), required=False, default=list)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("suite" in attrs) == ("dataset_version" in attrs):
            raise serializers.ValidationError({"suite": ["give either suite or dataset_version (with split)"]})
        if ("model_version_id" in attrs) == ("adapter_config" in attrs):
            raise serializers.ValidationError({"adapter_config": ["give either adapter_config or model_version_id"]})
        return attrs


class TargetOutSerializer(serializers.Serializer):
    """A category's accuracy target (``evaluation.targets``, in percent) and whether the run met it."""

    category = serializers.CharField()
    target_key = serializers.CharField()
    target = serializers.FloatField()
    exact = serializers.FloatField(allow_null=True)
    n = serializers.IntegerField(allow_null=True)
    met = serializers.BooleanField()


class GroupLabelOutSerializer(serializers.Serializer):
    """How a page names a stored group whose name alone is ambiguous, and what it counts."""

    # DRF's metaclass takes declared fields off the class, so this does not shadow Field.label.
    label = serializers.CharField()  # type: ignore[assignment]
    meaning = serializers.CharField()


class RunOutSerializer(serializers.ModelSerializer):
    suite = SuiteOutSerializer()
    progress_percent = serializers.IntegerField()
    targets = serializers.SerializerMethodField()
    group_labels = serializers.SerializerMethodField(
        help_text="{grouping: {stored name: {label, meaning}}} for the run's groups whose stored name is ambiguous "
                  "(the category multi_step holds every sequence; the dimension multi_step only sequences over "
                  "seen tools)")

    class Meta:
        model = EvalRun
        fields = ["id", "name", "suite", "model_version_id", "model_label", "adapter_config", "case_limit",
                  "category_filter", "status", "progress_done", "progress_total", "progress_percent", "exact",
                  "metrics", "group_labels", "targets", "error", "created_by", "created_at", "started_at",
                  "finished_at"]

    @extend_schema_field(TargetOutSerializer(many=True))
    def get_targets(self, run: EvalRun) -> list[dict[str, Any]]:
        return selectors.category_targets(run)

    @extend_schema_field(serializers.DictField(child=serializers.DictField(child=GroupLabelOutSerializer())))
    def get_group_labels(self, run: EvalRun) -> dict[str, dict[str, dict[str, str]]]:
        return selectors.group_labels_of(run)


class RunListFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=RunStatus.choices, required=False)
    suite = serializers.IntegerField(required=False, min_value=1, max_value=DB_INT_MAX)


class FailureFilterSerializer(serializers.Serializer):
    category = serializers.CharField(required=False)
    error_type = serializers.CharField(required=False)
    service = serializers.CharField(required=False)
    tool = serializers.CharField(required=False)
    dimension = serializers.CharField(required=False)


class FailureOutSerializer(serializers.ModelSerializer):
    class Meta:
        model = EvalFailure
        fields = ["id", "record_id", "category", "service", "tool", "dimension", "behavior", "error_type", "error",
                  "user_query", "expected", "got", "raw", "partial"]


class CompareInSerializer(serializers.Serializer):
    base = serializers.IntegerField(min_value=1, help_text="The run to compare against")
    other = serializers.IntegerField(min_value=1, help_text="The run whose change is measured (other - base)")


class DeltaRowOutSerializer(serializers.Serializer):
    name = serializers.CharField()
    label = serializers.CharField(  # type: ignore[assignment]  # a declared field, not Field.label
        help_text="What pages show for name (multi_step: 'sequence' as a category, 'multi-step, seen tools' as a "
                  "dimension)")
    base_n = serializers.IntegerField(allow_null=True)
    base_exact = serializers.FloatField(allow_null=True)
    other_n = serializers.IntegerField(allow_null=True)
    other_exact = serializers.FloatField(allow_null=True)
    delta = serializers.FloatField(allow_null=True)


class CompareOutSerializer(serializers.Serializer):
    base = serializers.IntegerField()
    other = serializers.IntegerField()
    base_exact = serializers.FloatField(allow_null=True)
    other_exact = serializers.FloatField(allow_null=True)
    delta = serializers.FloatField(allow_null=True)
    groups = serializers.DictField(child=DeltaRowOutSerializer(many=True))
    comparable_cases = serializers.BooleanField()
    fixed = serializers.ListField(child=serializers.CharField())
    regressed = serializers.ListField(child=serializers.CharField())


# --- views --------------------------------------------------------------------------------------


class SuitesApi(APIView):
    permission_classes = [CanRead]

    @extend_schema(operation_id="evaluation_suites_list", responses={200: paginated(SuiteOutSerializer)})
    def get(self, request: Request) -> Response:
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(selectors.suites_list(), request, view=self)
        return paginator.get_paginated_response(SuiteOutSerializer(page, many=True).data)


class RunsApi(APIView):
    """GET lists runs; POST queues a run on the ``evaluation`` queue (ml_orchestrator, admin)."""

    def get_permissions(self) -> list[Any]:
        return [CanRun()] if self.request.method == "POST" else [CanRead()]

    @extend_schema(operation_id="evaluation_runs_list", parameters=[RunListFilterSerializer],
                   responses={200: paginated(RunOutSerializer)})
    def get(self, request: Request) -> Response:
        filters = RunListFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        runs = selectors.runs_list(status=filters.validated_data.get("status", ""),
                                   suite_id=filters.validated_data.get("suite"))
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(runs, request, view=self)
        return paginator.get_paginated_response(RunOutSerializer(page, many=True).data)

    @extend_schema(operation_id="evaluation_runs_create", request=RunCreateInSerializer,
                   responses={201: RunOutSerializer})
    def post(self, request: Request) -> Response:
        data = RunCreateInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if "suite" in values:
            suite = selectors.suite_get(ref=values["suite"])
        else:
            from ftops.datasets.selectors import version_get

            version = version_get(number=values["dataset_version"])
            suite = services.eval_suite_for_dataset(dataset_version=version, split=values["split"])
        config = values.get("adapter_config")
        if config is not None and not isinstance(config, dict):
            raise ValidationFailed("adapter_config must be an object", fields={"adapter_config": ["an object"]})
        confine_adapter_config(config)
        actor = actor_for(request)
        run = services.eval_run_create(
            suite=suite, adapter_config=config, model_version_id=values.get("model_version_id"),
            name=values["name"], limit=values.get("limit"), categories=values["categories"],
            created_by=actor.label, by=actor,
        )
        run.refresh_from_db()
        return Response(RunOutSerializer(run).data, status=status.HTTP_201_CREATED)


class RunDetailApi(APIView):
    permission_classes = [CanRead]

    @extend_schema(operation_id="evaluation_runs_get", responses={200: RunOutSerializer})
    def get(self, request: Request, run_id: int) -> Response:
        return Response(RunOutSerializer(selectors.run_get(run_id=run_id)).data)


class RunFailuresApi(APIView):
    permission_classes = [CanRead]

    @extend_schema(operation_id="evaluation_run_failures", parameters=[FailureFilterSerializer],
                   responses={200: paginated(FailureOutSerializer)})
    def get(self, request: Request, run_id: int) -> Response:
        run = selectors.run_get(run_id=run_id)
        filters = FailureFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(selectors.failures_for(run, **filters.validated_data), request, view=self)
        return paginator.get_paginated_response(FailureOutSerializer(page, many=True).data)


class RunCancelApi(APIView):
    permission_classes = [CanRun]

    @extend_schema(operation_id="evaluation_runs_cancel", request=None, responses={200: RunOutSerializer})
    def post(self, request: Request, run_id: int) -> Response:
        run = services.eval_run_cancel(run=selectors.run_get(run_id=run_id))
        return Response(RunOutSerializer(run).data)


class CompareApi(APIView):
    permission_classes = [CanRead]

    @extend_schema(operation_id="evaluation_compare", parameters=[CompareInSerializer],
                   responses={200: CompareOutSerializer})
    def get(self, request: Request) -> Response:
        data = CompareInSerializer(data=request.query_params)
        data.is_valid(raise_exception=True)
        base = selectors.run_get(run_id=data.validated_data["base"])
        other = selectors.run_get(run_id=data.validated_data["other"])
        return Response(selectors.runs_compare(base=base, other=other).as_dict())
