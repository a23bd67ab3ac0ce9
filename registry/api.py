"""REST API for the registry: versions, lineage, gates, approval, promotion, rollback, canary.

Release decisions (approve, reject, override, promote, rollback, canary) need the
``approver`` role; registering and evaluating need ``ml_orchestrator``; reading needs any of
approver, ml_orchestrator or reviewer. Each view is one operation calling one service.
"""

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
from ftops.common.models import Role
from ftops.common.schema import DB_INT_MAX, paginated
from registry import gates, selectors, services
from registry.models import (
    Approval,
    CriticalScenario,
    Deployment,
    GateCheck,
    GateReport,
    ModelVersion,
    ModelVersionEvent,
    VersionStatus,
)

CanDecide = has_role(Role.APPROVER)
CanOperate = has_role(Role.ML_ORCHESTRATOR)
CanAutomate = has_role(Role.APPROVER, Role.ML_ORCHESTRATOR)
CanRead = has_role(Role.APPROVER, Role.ML_ORCHESTRATOR, Role.REVIEWER)

SCOPE_HELP = "'enterprise' or a catalog service name; default: the version's own scope"


# --- serializers --------------------------------------------------------------------------------


class RegistryVersionOutSerializer(serializers.ModelSerializer):
    training_run = serializers.IntegerField(source="training_run_id", allow_null=True)
    dataset_version = serializers.IntegerField(source="dataset_version.number", default=None)
    predecessor = serializers.CharField(source="predecessor.name", default=None)
    overall_exact = serializers.FloatField(allow_null=True)

    class Meta:
        model = ModelVersion
        fields = ["id", "name", "family", "semver", "semver_bump", "semver_reason", "base_model", "backend", "scope",
                  "status", "artifact_path", "artifact_sha256", "serving", "training_run", "dataset_version",
                  "predecessor", "overall_exact", "eval_results", "cost", "metrics", "created_by", "created_at",
                  "updated_at"]


class RegistryVersionListFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=VersionStatus.choices, required=False)
    scope = serializers.CharField(required=False, max_length=100)
    family = serializers.CharField(required=False, max_length=220)


class RegistryRegisterInSerializer(serializers.Serializer):
    training_run = serializers.IntegerField(min_value=1, max_value=DB_INT_MAX,
                                            help_text="A succeeded training run; registering it again returns "
                                                      "the version it already has")


class RegistryEvaluateInSerializer(serializers.Serializer):
    split = serializers.ChoiceField(choices=["test", "holdout"], default="test",
                                    help_text="The frozen split of the version's dataset version")


class RegistryEventOutSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelVersionEvent
        fields = ["id", "at", "kind", "from_status", "to_status", "scope", "reason", "actor", "detail"]


class RegistryCheckOutSerializer(serializers.ModelSerializer):
    blocks = serializers.BooleanField()

    class Meta:
        model = GateCheck
        fields = ["name", "subject", "outcome", "blocks", "observed", "baseline", "threshold", "n", "needed",
                  "message", "failing_cases"]


class RegistryGateReportOutSerializer(serializers.ModelSerializer):
    checks = RegistryCheckOutSerializer(many=True)
    baseline_version = serializers.IntegerField(source="baseline_version_id", allow_null=True)
    candidate_run = serializers.IntegerField(source="candidate_run_id", allow_null=True)
    baseline_run = serializers.IntegerField(source="baseline_run_id", allow_null=True)

    class Meta:
        model = GateReport
        fields = ["id", "created_at", "passed", "checks_passed", "checks_total", "decision", "baseline_label",
                  "baseline_version", "candidate_run", "baseline_run", "criteria", "failing_services",
                  "passing_services", "failure_pattern", "checks"]


class RegistryApprovalOutSerializer(serializers.ModelSerializer):
    class Meta:
        model = Approval
        fields = ["id", "decision", "comment", "override", "justification", "actor", "created_at"]


class RegistryDeploymentOutSerializer(serializers.ModelSerializer):
    model_version = serializers.IntegerField(source="model_version_id")
    model_version_name = serializers.CharField(source="model_version.name")
    previous_version = serializers.IntegerField(source="previous.model_version_id", default=None)

    class Meta:
        model = Deployment
        fields = ["id", "scope", "state", "model_version", "model_version_name", "previous_version", "reason",
                  "created_by", "created_at", "ended_at"]


class RegistryLineageOutSerializer(serializers.Serializer):
    deployments = serializers.ListField(child=serializers.DictField())
    evaluation_runs = serializers.ListField(child=serializers.IntegerField())
    training_run = serializers.DictField(allow_null=True)
    dataset_version = serializers.DictField(allow_null=True)
    predecessor = serializers.DictField(allow_null=True)


class RegistryVersionDetailOutSerializer(RegistryVersionOutSerializer):
    lineage = serializers.SerializerMethodField()
    gates = serializers.SerializerMethodField()
    approvals = serializers.SerializerMethodField()

    class Meta(RegistryVersionOutSerializer.Meta):
        fields = [*RegistryVersionOutSerializer.Meta.fields, "eval_run", "baseline_eval_run", "lineage", "gates",
                  "approvals"]

    @extend_schema_field(RegistryLineageOutSerializer)
    def get_lineage(self, obj: ModelVersion) -> dict[str, Any]:
        return selectors.lineage(model_version=obj)

    @extend_schema_field(RegistryGateReportOutSerializer(allow_null=True))
    def get_gates(self, obj: ModelVersion) -> dict[str, Any] | None:
        report = selectors.gate_report_latest(model_version=obj)
        return RegistryGateReportOutSerializer(report).data if report else None

    @extend_schema_field(RegistryApprovalOutSerializer(many=True))
    def get_approvals(self, obj: ModelVersion) -> list[dict[str, Any]]:
        return list(RegistryApprovalOutSerializer(selectors.model_version_approvals(model_version=obj), many=True).data)


class RegistryApproveInSerializer(serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=4000)


class RegistryOverrideInSerializer(serializers.Serializer):
    justification = serializers.CharField(max_length=4000, help_text="Why it may ship despite failed gates")
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=4000)


class RegistryRejectInSerializer(serializers.Serializer):
    comment = serializers.CharField(max_length=4000)


class RegistryPromoteInSerializer(serializers.Serializer):
    scope = serializers.CharField(required=False, allow_blank=True, default="", max_length=100, help_text=SCOPE_HELP)
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=4000)
    replaces = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=DB_INT_MAX,
        help_text="The version you expect in production now (null: none); a different one answers 409")


class RegistryPartialInSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=4000)


class RegistryRollbackInSerializer(serializers.Serializer):
    scope = serializers.CharField(required=False, allow_blank=True, default="", max_length=100,
                                  help_text="Default: every scope the version serves")
    reason = serializers.CharField(max_length=4000)


class RegistryScopeRollbackInSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=4000)


class RegistryCanaryInSerializer(serializers.Serializer):
    scope = serializers.CharField(required=False, allow_blank=True, default="", max_length=100, help_text=SCOPE_HELP)
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=4000)


class RegistryDeploymentFilterSerializer(serializers.Serializer):
    scope = serializers.CharField(required=False, max_length=100)
    active = serializers.BooleanField(required=False, default=False)


class RegistryCriticalInSerializer(serializers.Serializer):
    record_id = serializers.CharField(max_length=120, help_text="A test case: training example id or case id")
    service = serializers.SlugField(max_length=100)
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=300)


class RegistryCriticalOutSerializer(serializers.ModelSerializer):
    class Meta:
        model = CriticalScenario
        fields = ["id", "record_id", "service", "example", "note", "created_by", "created_at"]


class RegistryCriticalFilterSerializer(serializers.Serializer):
    service = serializers.CharField(required=False, max_length=100)


class RegistrySummaryOutSerializer(serializers.Serializer):
    awaiting_approval = RegistryVersionOutSerializer(many=True)
    production = serializers.DictField(child=RegistryVersionOutSerializer())
    canaries = RegistryDeploymentOutSerializer(many=True)


# --- views --------------------------------------------------------------------------------------


def _page(view: APIView, request: Request, queryset: Any, serializer: type[serializers.BaseSerializer]) -> Response:
    paginator: LimitOffsetPagination = LimitOffsetPagination()
    page: list[Any] | None = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer(page, many=True).data)


def _detail(version_id: int) -> dict[str, Any]:
    return dict(RegistryVersionDetailOutSerializer(selectors.model_version_get(model_version_id=version_id)).data)


class VersionsApi(APIView):
    """GET lists versions; POST registers a succeeded training run (idempotent)."""

    def get_permissions(self) -> list[Any]:
        return [CanOperate()] if self.request.method == "POST" else [CanRead()]

    @extend_schema(operation_id="registry_versions_list", parameters=[RegistryVersionListFilterSerializer],
                   responses={200: paginated(RegistryVersionOutSerializer)})
    def get(self, request: Request) -> Response:
        filters = RegistryVersionListFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        versions = selectors.model_versions_list(**filters.validated_data)
        return _page(self, request, versions, RegistryVersionOutSerializer)

    @extend_schema(operation_id="registry_versions_register", request=RegistryRegisterInSerializer,
                   responses={201: RegistryVersionDetailOutSerializer})
    def post(self, request: Request) -> Response:
        data = RegistryRegisterInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        version = services.model_version_register_for_run(training_run_id=data.validated_data["training_run"],
                                                          by=actor_for(request))
        return Response(_detail(version.pk), status=status.HTTP_201_CREATED)


class VersionDetailApi(APIView):
    permission_classes = [CanRead]

    @extend_schema(operation_id="registry_versions_get", responses={200: RegistryVersionDetailOutSerializer})
    def get(self, request: Request, version_id: int) -> Response:
        return Response(_detail(version_id))


class VersionEventsApi(APIView):
    permission_classes = [CanRead]

    @extend_schema(operation_id="registry_versions_events", responses={200: paginated(RegistryEventOutSerializer)})
    def get(self, request: Request, version_id: int) -> Response:
        version = selectors.model_version_get(model_version_id=version_id)
        return _page(self, request, selectors.model_version_events(model_version=version), RegistryEventOutSerializer)


class VersionGatesApi(APIView):
    """GET: the latest gate report; POST: compute the gates again from the finished runs."""

    def get_permissions(self) -> list[Any]:
        return [CanOperate()] if self.request.method == "POST" else [CanRead()]

    @extend_schema(operation_id="registry_versions_gates", responses={200: RegistryGateReportOutSerializer})
    def get(self, request: Request, version_id: int) -> Response:
        version = selectors.model_version_get(model_version_id=version_id)
        report = selectors.gate_report_latest(model_version=version)
        if report is None:
            from ftops.common.errors import NotFound

            raise NotFound(f"{version.name} has no gate report yet; evaluate it first")
        return Response(RegistryGateReportOutSerializer(report).data)

    @extend_schema(operation_id="registry_versions_gates_compute", request=None,
                   responses={200: RegistryGateReportOutSerializer})
    def post(self, request: Request, version_id: int) -> Response:
        version = gates.model_version_gates_compute(model_version_id=version_id, by=actor_for(request))
        report = selectors.gate_report_latest(model_version=version)
        return Response(RegistryGateReportOutSerializer(report).data)


class VersionEvaluateApi(APIView):
    permission_classes = [CanOperate]

    @extend_schema(operation_id="registry_versions_evaluate", request=RegistryEvaluateInSerializer,
                   responses={202: RegistryVersionDetailOutSerializer})
    def post(self, request: Request, version_id: int) -> Response:
        data = RegistryEvaluateInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.model_version_evaluate(model_version_id=version_id, by=actor_for(request),
                                        split=data.validated_data["split"])
        return Response(_detail(version_id), status=status.HTTP_202_ACCEPTED)


class VersionApproveApi(APIView):
    permission_classes = [CanDecide]

    @extend_schema(operation_id="registry_versions_approve", request=RegistryApproveInSerializer,
                   responses={200: RegistryVersionDetailOutSerializer})
    def post(self, request: Request, version_id: int) -> Response:
        data = RegistryApproveInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.model_version_approve(model_version_id=version_id, by=actor_for(request),
                                       comment=data.validated_data["comment"])
        return Response(_detail(version_id))


class VersionOverrideApi(APIView):
    permission_classes = [CanDecide]

    @extend_schema(operation_id="registry_versions_override", request=RegistryOverrideInSerializer,
                   responses={200: RegistryVersionDetailOutSerializer})
    def post(self, request: Request, version_id: int) -> Response:
        data = RegistryOverrideInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.model_version_approve(model_version_id=version_id, by=actor_for(request),
                                       comment=data.validated_data["comment"],
                                       override_justification=data.validated_data["justification"])
        return Response(_detail(version_id))


class VersionRejectApi(APIView):
    permission_classes = [CanDecide]

    @extend_schema(operation_id="registry_versions_reject", request=RegistryRejectInSerializer,
                   responses={200: RegistryVersionDetailOutSerializer})
    def post(self, request: Request, version_id: int) -> Response:
        data = RegistryRejectInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.model_version_reject(model_version_id=version_id, by=actor_for(request),
                                      comment=data.validated_data["comment"])
        return Response(_detail(version_id))


class VersionPromoteApi(APIView):
    permission_classes = [CanDecide]

    @extend_schema(operation_id="registry_versions_promote", request=RegistryPromoteInSerializer,
                   responses={200: RegistryVersionDetailOutSerializer})
    def post(self, request: Request, version_id: int) -> Response:
        data = RegistryPromoteInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        extra = {"expected_current": values["replaces"]} if "replaces" in values else {}
        services.model_version_promote(model_version_id=version_id, by=actor_for(request), scope=values["scope"],
                                       reason=values["reason"], **extra)
        return Response(_detail(version_id))


class VersionPromotePartialApi(APIView):
    permission_classes = [CanDecide]

    @extend_schema(operation_id="registry_versions_promote_partial", request=RegistryPartialInSerializer,
                   responses={200: RegistryVersionDetailOutSerializer})
    def post(self, request: Request, version_id: int) -> Response:
        data = RegistryPartialInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.model_version_promote_partial(model_version_id=version_id, by=actor_for(request),
                                               reason=data.validated_data["reason"])
        return Response(_detail(version_id))


class VersionRollbackApi(APIView):
    permission_classes = [CanDecide]

    @extend_schema(operation_id="registry_versions_rollback", request=RegistryRollbackInSerializer,
                   responses={200: RegistryVersionDetailOutSerializer})
    def post(self, request: Request, version_id: int) -> Response:
        data = RegistryRollbackInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        restored = services.model_version_rollback(model_version_id=version_id, by=actor_for(request),
                                                   reason=data.validated_data["reason"],
                                                   scope=data.validated_data["scope"])
        return Response(_detail(restored.pk))


class VersionCanaryStartApi(APIView):
    permission_classes = [CanDecide]

    @extend_schema(operation_id="registry_versions_canary_start", request=RegistryCanaryInSerializer,
                   responses={201: RegistryDeploymentOutSerializer})
    def post(self, request: Request, version_id: int) -> Response:
        data = RegistryCanaryInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        deployment = services.canary_start(model_version_id=version_id, by=actor_for(request),
                                           scope=data.validated_data["scope"], reason=data.validated_data["reason"])
        return Response(RegistryDeploymentOutSerializer(deployment).data, status=status.HTTP_201_CREATED)


class VersionCanaryPromoteApi(APIView):
    permission_classes = [CanAutomate]

    @extend_schema(operation_id="registry_versions_canary_promote", request=RegistryCanaryInSerializer,
                   responses={200: RegistryVersionDetailOutSerializer})
    def post(self, request: Request, version_id: int) -> Response:
        data = RegistryCanaryInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.canary_promote(model_version_id=version_id, by=actor_for(request),
                                scope=data.validated_data["scope"], reason=data.validated_data["reason"])
        return Response(_detail(version_id))


class VersionCanaryRollbackApi(APIView):
    permission_classes = [CanAutomate]

    @extend_schema(operation_id="registry_versions_canary_rollback", request=RegistryRollbackInSerializer,
                   responses={200: RegistryVersionDetailOutSerializer})
    def post(self, request: Request, version_id: int) -> Response:
        data = RegistryRollbackInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.canary_rollback(model_version_id=version_id, by=actor_for(request),
                                 reason=data.validated_data["reason"], scope=data.validated_data["scope"])
        return Response(_detail(version_id))


class DeploymentsApi(APIView):
    permission_classes = [CanRead]

    @extend_schema(operation_id="registry_deployments_list", parameters=[RegistryDeploymentFilterSerializer],
                   responses={200: paginated(RegistryDeploymentOutSerializer)})
    def get(self, request: Request) -> Response:
        filters = RegistryDeploymentFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        rows = selectors.deployments_list(scope=filters.validated_data.get("scope"),
                                          active_only=filters.validated_data["active"])
        return _page(self, request, rows, RegistryDeploymentOutSerializer)


class ScopeRollbackApi(APIView):
    """One-click rollback of a scope to its previous production version."""

    permission_classes = [CanDecide]

    @extend_schema(operation_id="registry_scope_rollback", request=RegistryScopeRollbackInSerializer,
                   responses={200: RegistryVersionDetailOutSerializer})
    def post(self, request: Request, scope: str) -> Response:
        data = RegistryScopeRollbackInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        restored = services.deployment_rollback(scope=scope, by=actor_for(request),
                                                reason=data.validated_data["reason"])
        return Response(_detail(restored.pk))


class CriticalScenariosApi(APIView):
    """GET lists critical test scenarios; POST marks one (service teams, approvers)."""

    def get_permissions(self) -> list[Any]:
        return [CanAutomate()] if self.request.method == "POST" else [CanRead()]

    @extend_schema(operation_id="registry_critical_list", parameters=[RegistryCriticalFilterSerializer],
                   responses={200: paginated(RegistryCriticalOutSerializer)})
    def get(self, request: Request) -> Response:
        filters = RegistryCriticalFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        return _page(self, request, selectors.critical_scenarios_list(**filters.validated_data),
                     RegistryCriticalOutSerializer)

    @extend_schema(operation_id="registry_critical_set", request=RegistryCriticalInSerializer,
                   responses={201: RegistryCriticalOutSerializer})
    def post(self, request: Request) -> Response:
        data = RegistryCriticalInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        scenario = services.critical_scenario_set(by=actor_for(request), **data.validated_data)
        return Response(RegistryCriticalOutSerializer(scenario).data, status=status.HTTP_201_CREATED)


class CriticalScenarioDetailApi(APIView):
    permission_classes = [CanAutomate]

    @extend_schema(operation_id="registry_critical_clear", responses={204: None})
    def delete(self, request: Request, record_id: str) -> Response:
        services.critical_scenario_clear(record_id=record_id, by=actor_for(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ExampleVersionsApi(APIView):
    """Lineage from the example side: every version whose training split held it."""

    permission_classes = [CanRead]

    @extend_schema(operation_id="registry_example_versions", responses={200: paginated(RegistryVersionOutSerializer)})
    def get(self, request: Request, example_id: int) -> Response:
        return _page(self, request, selectors.model_versions_for_example(example_id=example_id),
                     RegistryVersionOutSerializer)


class SummaryApi(APIView):
    permission_classes = [CanRead]

    @extend_schema(operation_id="registry_summary", responses={200: RegistrySummaryOutSerializer})
    def get(self, request: Request) -> Response:
        summary = selectors.registry_summary()
        return Response(RegistrySummaryOutSerializer({"awaiting_approval": summary.awaiting_approval,
                                              "production": summary.production,
                                              "canaries": summary.canaries}).data)
