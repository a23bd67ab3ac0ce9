"""REST API for interactions: ingest (one, a batch, or queued), list, detail, late feedback.

The ingest body is validated by ``ftops.interactions.validation`` rather than a nested DRF
serializer: for a batch of 1,000 it is an order of magnitude faster and names each bad item
and field. The serializers below describe the same payload for the OpenAPI schema.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, PolymorphicProxySerializer, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ParseError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ftops.common.auth import has_role, request_roles
from ftops.common.errors import FtopsError, ValidationFailed
from ftops.common.models import ApiKey, Role
from ftops.common.schema import paginated
from ftops.interactions import selectors, services
from ftops.interactions.models import CallVerdict, FailureKind, IngestBatch, Interaction
from ftops.interactions.parsers import NestingTooDeep, SafeJSONParser

CanIngest = has_role(Role.INGEST)
CanRead = has_role(Role.INGEST, Role.REVIEWER)


def _key(request: Request) -> ApiKey | None:
    return request.auth if isinstance(request.auth, ApiKey) else None


# --- serializers --------------------------------------------------------------------------------


class ToolCallSerializer(serializers.Serializer):
    name = serializers.CharField()
    arguments = serializers.JSONField(help_text="Object, or a JSON string (OpenAI format)")


class InteractionInSerializer(serializers.Serializer):
    id = serializers.CharField(max_length=200, help_text="Your unique id; retries with the same body are replays")
    service = serializers.CharField(help_text="Catalog service name, e.g. 'payments'")
    timestamp = serializers.DateTimeField(required=False, help_text="ISO 8601 (or epoch seconds); default now")
    messages = serializers.ListField(child=serializers.DictField(), required=False, help_text="[{role, content}]")
    prompt = serializers.CharField(required=False, help_text="Instead of messages: the user's text")
    tools = serializers.ListField(child=serializers.JSONField(), required=False, help_text="Tools offered")
    tool_calls = ToolCallSerializer(many=True, required=False, help_text="[{name, arguments}] or OpenAI tool_calls")
    response_text = serializers.CharField(required=False, allow_blank=True)
    task_type = serializers.CharField(required=False, max_length=100)
    user_feedback = serializers.IntegerField(required=False, min_value=1, max_value=5, allow_null=True)
    success = serializers.BooleanField(required=False, allow_null=True)
    confidence = serializers.FloatField(required=False, min_value=0, max_value=1, allow_null=True)
    latency_ms = serializers.IntegerField(required=False, min_value=0, allow_null=True)
    tokens_used = serializers.IntegerField(required=False, min_value=0, allow_null=True)
    model_version = serializers.CharField(required=False, max_length=200)
    metadata = serializers.DictField(required=False)


class InteractionListInSerializer(serializers.ListSerializer):
    child = InteractionInSerializer()


class InteractionBatchInSerializer(serializers.Serializer):
    interactions = InteractionInSerializer(many=True)


class IngestItemOutSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    id = serializers.CharField()
    pk = serializers.IntegerField()
    replayed = serializers.BooleanField()
    call_verdict = serializers.ChoiceField(choices=CallVerdict.choices)
    is_failure = serializers.BooleanField()
    failure_kind = serializers.CharField()
    redactions = serializers.DictField(child=serializers.IntegerField())


class IngestBatchOutSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    replayed = serializers.IntegerField()
    results = IngestItemOutSerializer(many=True)


class InteractionOutSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="external_id")
    service = serializers.CharField(source="service.name")

    class Meta:
        model = Interaction
        fields = [
            "id", "service", "timestamp", "messages", "tools", "tool_calls", "response_text", "task_type",
            "user_feedback", "success", "confidence", "latency_ms", "tokens_used", "model_version", "metadata",
            "redactions", "call_verdict", "verdict_reason", "is_failure", "failure_kind", "created_at",
        ]  # fmt: skip


class InteractionIngestOutSerializer(InteractionOutSerializer):
    replayed = serializers.SerializerMethodField()

    class Meta(InteractionOutSerializer.Meta):
        fields = [*InteractionOutSerializer.Meta.fields, "replayed"]

    def get_replayed(self, obj: Interaction) -> bool:
        return bool(self.context.get("replayed"))


class QueuedBatchOutSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = IngestBatch
        fields = ["id", "status", "size", "batch_key", "result", "error", "attempts", "progress", "created_at",
                  "started_at", "finished_at", "url"]

    def get_url(self, obj: IngestBatch) -> str:
        return reverse("api-interaction-batch", args=[obj.pk])


class InteractionFilterSerializer(serializers.Serializer):
    service = serializers.CharField(required=False)
    failure_kind = serializers.ChoiceField(choices=FailureKind.choices, required=False)
    is_failure = serializers.BooleanField(required=False, allow_null=True, default=None)
    call_verdict = serializers.ChoiceField(choices=CallVerdict.choices, required=False)
    model_version = serializers.CharField(required=False)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)


class FeedbackInSerializer(serializers.Serializer):
    score = serializers.IntegerField(min_value=1, max_value=5, help_text="1 (bad) to 5 (good)")
    comment = serializers.CharField(required=False, allow_blank=True, max_length=5000)


class FeedbackOutSerializer(serializers.Serializer):
    id = serializers.CharField()
    feedback_id = serializers.IntegerField()
    user_feedback = serializers.IntegerField()
    is_failure = serializers.BooleanField()
    failure_kind = serializers.CharField()


_INGEST_BODY = PolymorphicProxySerializer(
    component_name="InteractionIngestBody",
    # A ListSerializer is not a Serializer to the type stubs, but drf-spectacular takes it.
    serializers=[InteractionInSerializer, cast(Any, InteractionListInSerializer()), InteractionBatchInSerializer],
    resource_type_field_name=None,
    many=False,
)


# --- views --------------------------------------------------------------------------------------


@contextmanager
def _gc_paused() -> Iterator[None]:
    """A batch parses into ~100k short-lived, acyclic objects; the cyclic collector's repeated
    passes over the whole heap meanwhile cost ~25% of the parse. Pause it for one request."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            # Everything allocated meanwhile (the parsed batch, still held by the request) sits in
            # the youngest generation, and the first collection after enabling would walk all of
            # it (~30 ms a batch). Move it to the oldest generation instead: reference counting
            # frees it when the request ends, and the rare full collections see it as usual.
            gc.freeze()
            gc.unfreeze()
            gc.enable()


def _payloads(request: Request) -> tuple[list[Any], bool]:
    """The posted interactions and whether a single object was sent."""
    try:
        data = request.data
    except RequestDataTooBig as exc:
        limit_mb = settings.DATA_UPLOAD_MAX_MEMORY_SIZE // (1024 * 1024)
        raise services.BatchTooLarge(
            f"the request body is larger than {limit_mb} MB (FTOPS_MAX_REQUEST_MB); send smaller batches"
        ) from exc
    except NestingTooDeep:
        raise  # its own 400 ("nesting_too_deep"); it is not a syntax error to report as one
    except ParseError as exc:
        raise FtopsError(
            f"the body is not valid JSON ({exc.detail}); send one interaction object, a list of them, "
            "or {\"interactions\": [...]}"
        ) from exc
    if isinstance(data, list):
        return data, False
    if isinstance(data, dict):
        if set(data) == {"interactions"}:
            batch = data["interactions"]
            if not isinstance(batch, list):
                raise ValidationFailed("'interactions' must be a list", fields={"interactions": ["must be a list"]})
            return batch, False
        return [data], True
    raise ValidationFailed(
        "send one interaction object, a list of them, or {\"interactions\": [...]}",
        fields={"non_field_errors": ["the body must be a JSON object or array"]},
    )


def _enqueue(request: Request, payloads: list[Any]) -> Response:
    """202 once the batch row is committed and its task published; 503 with Retry-After when the
    broker could not take the task (the row stays pending and is published by the sender)."""
    batch_key = request.headers.get("Idempotency-Key", "").strip()
    if len(batch_key) > 200:
        raise ValidationFailed("the Idempotency-Key header is longer than 200 characters",
                               fields={"Idempotency-Key": ["at most 200 characters"]})
    outcome = services.interactions_ingest_enqueue(payloads=payloads, api_key=_key(request), batch_key=batch_key)
    batch = outcome.batch
    if outcome.publish_error:
        retry_after = settings.FTOPS_INGEST_RETRY_AFTER_S
        raise services.BrokerUnavailable(
            f"batch {batch.pk} is stored but could not be queued (the task broker is unreachable); it will be "
            f"queued when the broker is back. Retry in {retry_after}s with the same body (or Idempotency-Key) "
            "to confirm it: the retry finds this batch, never a second one",
            fields={"batch": {"id": batch.pk, "batch_key": batch.batch_key, "status": batch.status,
                              "url": reverse("api-interaction-batch", args=[batch.pk])}},
            retry_after=retry_after,
        )
    response = Response(QueuedBatchOutSerializer(batch).data, status=status.HTTP_202_ACCEPTED)
    if not outcome.created:
        response["Idempotent-Replayed"] = "true"
    return response


class InteractionsApi(APIView):
    """POST ingests; GET lists (one view per path; each method has its own serializers)."""

    parser_classes = [SafeJSONParser]

    def get_permissions(self) -> list[Any]:
        return [CanIngest()] if self.request.method == "POST" else [CanRead()]

    @extend_schema(
        operation_id="interactions_ingest",
        request=_INGEST_BODY,
        parameters=[
            OpenApiParameter("async", OpenApiTypes.BOOL, description="queue the batch on the ingestion queue (202)"),
            OpenApiParameter(
                "Idempotency-Key", OpenApiTypes.STR, location=OpenApiParameter.HEADER, required=False,
                description="with async=1: a retry with the same key (default: the same ids and bodies) answers "
                "with the first batch instead of queueing another",
            ),
        ],
        responses={
            201: PolymorphicProxySerializer(
                component_name="InteractionIngestResult",
                serializers=[InteractionIngestOutSerializer, IngestBatchOutSerializer],
                resource_type_field_name=None,
                many=False,
            ),
            200: IngestBatchOutSerializer,
            202: QueuedBatchOutSerializer,
        },
        description=(
            "Ingest one interaction (object), or a batch (array, or {interactions: [...]}) of up to "
            "FTOPS_INGEST_MAX_BATCH. All-or-nothing; idempotent by id. PII is redacted before storage; tool "
            "calls are checked against the service's current schemas."
        ),
    )
    def post(self, request: Request) -> Response:
        with _gc_paused():
            payloads, single = _payloads(request)
            if request.query_params.get("async") in ("1", "true", "yes"):
                return _enqueue(request, payloads)
            result = services.interactions_ingest(payloads=payloads, api_key=_key(request), single=single)
            if not single:
                # Inside the pause too: 1,000 result dicts allocated while the parsed batch is
                # still alive would set off collections that walk all of it.
                code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
                return Response(result.as_dict(), status=code)
        item = result.items[0]
        obj = Interaction.objects.select_related("service").get(pk=item.pk)
        data = InteractionIngestOutSerializer(obj, context={"replayed": item.replayed}).data
        return Response(data, status=status.HTTP_200_OK if item.replayed else status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="interactions_list",
        parameters=[InteractionFilterSerializer],
        responses={200: paginated(InteractionOutSerializer)},
    )
    def get(self, request: Request) -> Response:
        filters = InteractionFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        qs = selectors.interactions_list(roles=request_roles(request), api_key=_key(request), **filters.validated_data)
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(InteractionOutSerializer(page, many=True).data)


class InteractionDetailApi(APIView):
    permission_classes = [CanRead]

    @extend_schema(operation_id="interactions_retrieve", responses={200: InteractionOutSerializer})
    def get(self, request: Request, external_id: str) -> Response:
        obj = selectors.interaction_get(external_id=external_id, roles=request_roles(request), api_key=_key(request))
        return Response(InteractionOutSerializer(obj).data)


class InteractionFeedbackApi(APIView):
    permission_classes = [CanIngest]

    @extend_schema(
        operation_id="interactions_feedback",
        request=FeedbackInSerializer,
        responses={201: FeedbackOutSerializer},
        description="Add feedback that arrived after logging; a score <= FTOPS_FAILURE_FEEDBACK_MAX marks a failure.",
    )
    def post(self, request: Request, external_id: str) -> Response:
        data = FeedbackInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        obj = selectors.interaction_get(external_id=external_id, roles=request_roles(request), api_key=_key(request))
        event = services.interaction_feedback_add(interaction=obj, **data.validated_data)
        out = {
            "id": obj.external_id,
            "feedback_id": event.pk,
            "user_feedback": obj.user_feedback,
            "is_failure": obj.is_failure,
            "failure_kind": obj.failure_kind,
        }
        return Response(FeedbackOutSerializer(out).data, status=status.HTTP_201_CREATED)


class IngestBatchDetailApi(APIView):
    permission_classes = [CanRead]

    @extend_schema(operation_id="interaction_batches_retrieve", responses={200: QueuedBatchOutSerializer})
    def get(self, request: Request, batch_id: int) -> Response:
        batch = selectors.ingest_batch_get(batch_id=batch_id, roles=request_roles(request), api_key=_key(request))
        return Response(QueuedBatchOutSerializer(batch).data)

