"""REST API for access: API keys (admin) and the audit log (admin)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ftops.common.auth import has_role
from ftops.common.errors import NotFound
from ftops.common.models import ApiKey, AuditEvent, Role
from ftops.common.schema import paginated
from ftops.common.selectors import api_keys_list, audit_events
from ftops.common.services import api_key_create, api_key_revoke

IsAdmin = has_role(Role.ADMIN)


def _caller(request: Request) -> dict[str, Any]:
    """Who acts, in the keyword form the access services take."""
    if isinstance(request.auth, ApiKey):
        return {"by_key": request.auth}
    return {"user": request.user}


class ApiKeyCreateInSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    roles = serializers.ListField(child=serializers.ChoiceField(choices=Role.choices), allow_empty=False)


class ApiKeyOutSerializer(serializers.ModelSerializer):
    is_active = serializers.BooleanField(read_only=True)

    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "roles", "is_active", "created_at", "revoked_at", "last_used_at"]


class ApiKeyIssuedOutSerializer(ApiKeyOutSerializer):
    secret = serializers.CharField(help_text="Shown once; only its hash is stored")

    class Meta(ApiKeyOutSerializer.Meta):
        fields = [*ApiKeyOutSerializer.Meta.fields, "secret"]


class AuditFilterSerializer(serializers.Serializer):
    action = serializers.CharField(required=False, help_text="e.g. permission.denied, api_key.created")


class AuditEventOutSerializer(serializers.ModelSerializer):
    api_key = serializers.CharField(source="api_key.prefix", default=None)

    class Meta:
        model = AuditEvent
        fields = ["id", "at", "action", "actor", "api_key", "object_type", "object_id", "detail", "ip"]


class ApiKeysApi(APIView):
    """GET lists keys (never secrets); POST issues a key and shows its secret once."""

    permission_classes = [IsAdmin]

    @extend_schema(operation_id="keys_list", responses={200: paginated(ApiKeyOutSerializer)})
    def get(self, request: Request) -> Response:
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(api_keys_list(), request, view=self)
        return paginator.get_paginated_response(ApiKeyOutSerializer(page, many=True).data)

    @extend_schema(operation_id="keys_create", request=ApiKeyCreateInSerializer,
                   responses={201: ApiKeyIssuedOutSerializer})
    def post(self, request: Request) -> Response:
        data = ApiKeyCreateInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        caller = _caller(request)
        issued = api_key_create(
            name=data.validated_data["name"],
            roles=list(data.validated_data["roles"]),
            created_by=caller.get("user"),
            by_key=caller.get("by_key"),
        )
        body = {**ApiKeyOutSerializer(issued.api_key).data, "secret": issued.secret}
        return Response(body, status=status.HTTP_201_CREATED)


class ApiKeyRevokeApi(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(operation_id="keys_revoke", request=None, responses={200: ApiKeyOutSerializer})
    def post(self, request: Request, key_id: int) -> Response:
        key = api_keys_list().filter(pk=key_id).first()
        if key is None:
            raise NotFound(f"no API key with id {key_id}")
        api_key_revoke(api_key=key, **_caller(request))
        return Response(ApiKeyOutSerializer(key).data)


class AuditEventsApi(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(operation_id="audit_list", parameters=[AuditFilterSerializer],
                   responses={200: paginated(AuditEventOutSerializer)})
    def get(self, request: Request) -> Response:
        filters = AuditFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(audit_events(**filters.validated_data), request, view=self)
        return paginator.get_paginated_response(AuditEventOutSerializer(page, many=True).data)
