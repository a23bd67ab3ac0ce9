"""REST API for training runs: create (ml_orchestrator), list, detail, cancel."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ftops.common.actors import actor_for
from ftops.common.auth import has_role
from ftops.common.models import Role
from ftops.common.paths import confined_model_location
from ftops.common.schema import paginated
from ftops.training.models import Backend, RunStatus, TrainingRun
from ftops.training.selectors import training_run_get, training_runs_list
from ftops.training.services import training_run_cancel, training_run_create

CanTrain = has_role(Role.ML_ORCHESTRATOR, Role.ADMIN)
CanRead = has_role(Role.ML_ORCHESTRATOR, Role.APPROVER, Role.REVIEWER, Role.ADMIN)


class TrainingRunCreateInSerializer(serializers.Serializer):
    backend = serializers.ChoiceField(choices=Backend.choices)
    dataset_version = serializers.CharField(help_text="A dataset version number, or 'latest'")
    base_model = serializers.CharField(required=False, allow_blank=True, max_length=300,
                                       help_text="Hugging Face id / local folder / OpenAI model; default per backend")
    service = serializers.CharField(required=False, allow_blank=True, max_length=100,
                                    help_text="Train a per-service adapter on this service's records only")
    name = serializers.CharField(required=False, allow_blank=True, max_length=200)
    config = serializers.DictField(required=False, help_text="Backend config overrides (e.g. r, lr, epochs)")


class TrainingRunFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=RunStatus.choices, required=False)
    backend = serializers.ChoiceField(choices=Backend.choices, required=False)


class TrainingRunOutSerializer(serializers.ModelSerializer):
    dataset_version = serializers.IntegerField(source="dataset_version.number", default=None)

    class Meta:
        model = TrainingRun
        fields = ["id", "name", "backend", "base_model", "dataset_version", "service", "status", "progress", "step",
                  "total_steps", "eta_seconds", "attempts", "cancel_requested", "artifact_path", "artifact_bytes",
                  "external_ids", "metrics", "error", "created_at", "started_at", "finished_at", "heartbeat_at",
                  "created_by"]


class TrainingRunDetailOutSerializer(TrainingRunOutSerializer):
    class Meta(TrainingRunOutSerializer.Meta):
        fields = [*TrainingRunOutSerializer.Meta.fields, "config", "loss_series", "val_loss_series", "log_tail",
                  "artifact", "lease_owner", "lease_expires_at"]


def _base_model(values: dict[str, Any]) -> str:
    """OpenAI names a model; the local backends read one from disk, so theirs is confined (rule 15)."""
    base = str(values.get("base_model", ""))
    return base if values["backend"] == Backend.OPENAI else confined_model_location(base, field="base_model")


class TrainingRunsApi(APIView):
    """GET lists runs (newest first); POST queues a run on the training queue."""

    def get_permissions(self) -> list[Any]:
        return [CanTrain()] if self.request.method == "POST" else [CanRead()]

    @extend_schema(operation_id="training_runs_list", parameters=[TrainingRunFilterSerializer],
                   responses={200: paginated(TrainingRunOutSerializer)})
    def get(self, request: Request) -> Response:
        filters = TrainingRunFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(training_runs_list(**filters.validated_data), request, view=self)
        return paginator.get_paginated_response(TrainingRunOutSerializer(page, many=True).data)

    @extend_schema(operation_id="training_runs_create", request=TrainingRunCreateInSerializer,
                   responses={201: TrainingRunDetailOutSerializer})
    def post(self, request: Request) -> Response:
        from ftops.datasets.selectors import version_get

        data = TrainingRunCreateInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        run = training_run_create(
            backend=values["backend"], dataset_version=version_get(number=values["dataset_version"]),
            config=dict(values.get("config") or {}),
            base_model=_base_model(values),
            service=values.get("service", ""), name=values.get("name", ""), actor=actor_for(request),
        )
        run.refresh_from_db()
        return Response(TrainingRunDetailOutSerializer(run).data, status=status.HTTP_201_CREATED)


class TrainingRunDetailApi(APIView):
    permission_classes = [CanRead]

    @extend_schema(operation_id="training_runs_detail", responses={200: TrainingRunDetailOutSerializer})
    def get(self, request: Request, run_id: int) -> Response:
        return Response(TrainingRunDetailOutSerializer(training_run_get(run_id=run_id)).data)


class TrainingRunCancelApi(APIView):
    permission_classes = [CanTrain]

    @extend_schema(operation_id="training_runs_cancel", request=None, responses={200: TrainingRunDetailOutSerializer})
    def post(self, request: Request, run_id: int) -> Response:
        run = training_run_cancel(run_id=run_id, actor=actor_for(request))
        return Response(TrainingRunDetailOutSerializer(run).data)
