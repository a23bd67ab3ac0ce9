"""REST: the retraining triggers that fired (kept at ``/api/v1/curation/triggers``, where clients know it)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ftops.common.auth import has_role
from ftops.common.models import Role
from ftops.loop import selectors
from ftops.loop.models import TriggerEvent

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
