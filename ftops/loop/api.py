"""REST: the retraining triggers that fired (kept at ``/api/v1/curation/triggers``, where clients know it)
and the improvement cycles under ``/api/v1/loop/cycles``."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ftops.common.actors import actor_for
from ftops.common.auth import has_role
from ftops.common.errors import NotFound
from ftops.common.models import Role
from ftops.common.schema import api_paginator, paginated
from ftops.loop import selectors
from ftops.loop.cycles import cycle_start, runs_in_background
from ftops.loop.models import ENTERPRISE_SCOPE, Cycle, CycleOrigin, CycleStage, TriggerEvent

CanReadTriggers = has_role(Role.REVIEWER, Role.ML_ORCHESTRATOR, Role.ADMIN)


class TriggerOutSerializer(serializers.ModelSerializer):
    service = serializers.CharField(source="service.name", default=None)

    class Meta:
        model = TriggerEvent
        fields = ["id", "kind", "service", "fingerprint", "reason", "details", "created_at"]


class TriggersApi(APIView):
    permission_classes = [CanReadTriggers]

    @extend_schema(operation_id="curation_triggers", responses={200: TriggerOutSerializer(many=True)})
    def get(self, request: Request) -> Response:
        return Response(TriggerOutSerializer(selectors.triggers_recent(), many=True).data)


CanReadCycles = has_role(Role.REVIEWER, Role.ML_ORCHESTRATOR, Role.ADMIN)
CanStartCycles = has_role(Role.ML_ORCHESTRATOR, Role.ADMIN)


class CycleStageOutSerializer(serializers.ModelSerializer):
    class Meta:
        model = CycleStage
        fields = ["name", "position", "status", "attempts", "polls", "note", "links", "error", "log",
                  "started_at", "finished_at"]


class CycleOutSerializer(serializers.ModelSerializer):
    stages = CycleStageOutSerializer(many=True, read_only=True)
    triggers = serializers.SerializerMethodField()

    class Meta:
        model = Cycle
        fields = ["id", "scope", "status", "origin", "reason", "scheduled_for", "backend", "backend_reason",
                  "started_by", "error", "created_at", "finished_at", "stages", "triggers"]

    def get_triggers(self, obj: Cycle) -> list[int]:
        return [link.trigger_id for link in obj.folded.all()]


class CycleStartSerializer(serializers.Serializer):
    service = serializers.CharField(required=False, allow_blank=True, default="",
                                    help_text="A catalog service; empty: the enterprise")
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


def _cycles() -> Any:
    return Cycle.objects.prefetch_related("stages", "folded").order_by("-created_at", "-id")


class CyclesApi(APIView):
    def get_permissions(self) -> list[Any]:
        return [CanStartCycles()] if self.request.method == "POST" else [CanReadCycles()]

    @extend_schema(operation_id="loop_cycles_list", responses={200: paginated(CycleOutSerializer)})
    def get(self, request: Request) -> Response:
        paginator = api_paginator()
        page: list[Cycle] | None = paginator.paginate_queryset(_cycles(), request, view=self)
        return paginator.get_paginated_response(CycleOutSerializer(page, many=True).data)

    @extend_schema(operation_id="loop_cycles_start", request=CycleStartSerializer,
                   responses={201: CycleOutSerializer})
    def post(self, request: Request) -> Response:
        body = CycleStartSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        actor = actor_for(request)
        cycle = cycle_start(actor=actor, scope=body.validated_data["service"] or ENTERPRISE_SCOPE,
                            origin=CycleOrigin.MANUAL, reason=body.validated_data["reason"]
                            or f"started through the API by {actor.label}", send=runs_in_background())
        return Response(CycleOutSerializer(_cycles().get(pk=cycle.pk)).data, status=201)


class CycleDetailApi(APIView):
    permission_classes = [CanReadCycles]

    @extend_schema(operation_id="loop_cycles_detail", responses={200: CycleOutSerializer})
    def get(self, request: Request, cycle_id: int) -> Response:
        cycle = _cycles().filter(pk=cycle_id).first()
        if cycle is None:
            raise NotFound(f"cycle {cycle_id} does not exist")
        return Response(CycleOutSerializer(cycle).data)
