"""REST API for reviewers: list the queue, read an item, claim, release, submit, reject, skip.

One APIView per operation with separate input and output serializers; the same services as
the HTML pages. Every route needs the ``reviewer`` role (API key or session user).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ftops.common.actors import actor_for
from ftops.common.api_errors import error_body
from ftops.common.auth import has_role
from ftops.common.models import Role
from ftops.common.schema import paginated
from ftops.datasets.models import Behavior
from review import selectors, services
from review.forms import STATUS_FILTERS, correction_from_api
from review.models import ReviewItem, ReviewStatus

IsReviewer = has_role(Role.REVIEWER)


class ReviewItemOutSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    interaction = serializers.CharField(source="interaction.external_id")
    service = serializers.CharField(source="service.name")
    tool_name = serializers.CharField()
    failure_kind = serializers.CharField()
    user_query = serializers.CharField()
    occurred_at = serializers.DateTimeField()
    status = serializers.ChoiceField(choices=ReviewStatus.choices)
    version = serializers.IntegerField(help_text="Send it back with submit/reject/skip; a stale one gets 409")
    holder = serializers.CharField()
    lease_expires_at = serializers.DateTimeField(allow_null=True)
    required_reviews = serializers.IntegerField()
    reviews_done = serializers.IntegerField()
    example = serializers.IntegerField(source="example_id", allow_null=True)
    agreement = serializers.JSONField(allow_null=True)


class ReviewItemDetailOutSerializer(ReviewItemOutSerializer):
    messages = serializers.JSONField(source="interaction.messages")
    tools = serializers.JSONField(source="interaction.tools")
    tool_calls = serializers.JSONField(source="interaction.tool_calls")
    response_text = serializers.CharField(source="interaction.response_text")


class QueueQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=STATUS_FILTERS, required=False, default="open")
    service = serializers.CharField(required=False, default="")
    tool = serializers.CharField(required=False, default="")
    kind = serializers.CharField(required=False, default="")
    q = serializers.CharField(required=False, default="")


class CallInSerializer(serializers.Serializer):
    name = serializers.CharField()
    arguments = serializers.DictField(help_text="Plain values; '{prev.field}' refers to an earlier step's result")


class SubmitInSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1)
    behavior = serializers.ChoiceField(choices=Behavior.choices)  # the same enum as training examples
    calls = CallInSerializer(many=True, required=False, default=list)
    tool = serializers.CharField(required=False, allow_blank=True, default="",
                                 help_text="clarify / ask_for_details: the tool the request is about")
    question = serializers.CharField(required=False, allow_blank=True, default="")
    reason = serializers.CharField(required=False, allow_blank=True, default="")
    required_fields = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    explanation = serializers.CharField(required=False, allow_blank=True, default="")
    common_mistakes = serializers.ListField(child=serializers.CharField(), required=False, default=list,
                                            help_text="Tag slugs (e.g. dollars_for_cents) or free sentences")


class SubmitOutSerializer(serializers.Serializer):
    item = ReviewItemOutSerializer()
    example = serializers.IntegerField(allow_null=True, help_text="The training example made (last review only)")
    final = serializers.BooleanField(help_text="False after the first of two reviews")


class RejectInSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1)
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)


class SkipInSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1)


class ConflictOutSerializer(serializers.Serializer):
    error = serializers.DictField()


def _item(item_id: int) -> ReviewItem:
    return selectors.review_item_get(item_id=item_id)


class ReviewQueueApi(APIView):
    permission_classes = [IsReviewer]

    @extend_schema(operation_id="review_items_list", parameters=[QueueQuerySerializer],
                   responses={200: paginated(ReviewItemOutSerializer)}, tags=["review"])
    def get(self, request: Request) -> Response:
        query = QueueQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        qs = selectors.review_queue(actor=actor_for(request), **query.validated_data).select_related("interaction")
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(ReviewItemOutSerializer(page, many=True).data)


class ReviewItemApi(APIView):
    permission_classes = [IsReviewer]

    @extend_schema(operation_id="review_item_get", responses=ReviewItemDetailOutSerializer, tags=["review"])
    def get(self, request: Request, item_id: int) -> Response:
        return Response(ReviewItemDetailOutSerializer(_item(item_id)).data)


class ReviewClaimApi(APIView):
    permission_classes = [IsReviewer]

    @extend_schema(operation_id="review_item_claim", request=None,
                   responses={200: ReviewItemOutSerializer, 409: ConflictOutSerializer}, tags=["review"])
    def post(self, request: Request, item_id: int) -> Response:
        item = services.review_item_claim(item_id=item_id, actor=actor_for(request))
        return Response(ReviewItemOutSerializer(item).data)


class ReviewReleaseApi(APIView):
    permission_classes = [IsReviewer]

    @extend_schema(operation_id="review_item_release", request=None,
                   responses={200: ReviewItemOutSerializer, 409: ConflictOutSerializer}, tags=["review"])
    def post(self, request: Request, item_id: int) -> Response:
        item = services.review_item_release(item_id=item_id, actor=actor_for(request))
        return Response(ReviewItemOutSerializer(item).data)


class ReviewSubmitApi(APIView):
    permission_classes = [IsReviewer]

    @extend_schema(operation_id="review_item_submit", request=SubmitInSerializer,
                   responses={201: SubmitOutSerializer, 409: ConflictOutSerializer}, tags=["review"])
    def post(self, request: Request, item_id: int) -> Response:
        body = SubmitInSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data: dict[str, Any] = dict(body.validated_data)
        correction = correction_from_api(data)
        try:
            result = services.review_item_submit(item_id=item_id, actor=actor_for(request), version=data["version"],
                                                 correction=correction)
        except services.StaleItem as exc:
            payload = error_body(exc.code, exc.message, exc.fields)
            payload["item"] = ReviewItemOutSerializer(exc.item).data
            return Response(payload, status=status.HTTP_409_CONFLICT)
        return Response(
            SubmitOutSerializer({"item": result.item, "example": getattr(result.example, "pk", None),
                                 "final": result.final}).data,
            status=status.HTTP_201_CREATED,
        )


class ReviewRejectApi(APIView):
    permission_classes = [IsReviewer]

    @extend_schema(operation_id="review_item_reject", request=RejectInSerializer,
                   responses={200: ReviewItemOutSerializer, 409: ConflictOutSerializer}, tags=["review"])
    def post(self, request: Request, item_id: int) -> Response:
        body = RejectInSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        item = services.review_item_reject(item_id=item_id, actor=actor_for(request),
                                           version=body.validated_data["version"], reason=body.validated_data["reason"])
        return Response(ReviewItemOutSerializer(item).data)


class ReviewSkipApi(APIView):
    permission_classes = [IsReviewer]

    @extend_schema(operation_id="review_item_skip", request=SkipInSerializer,
                   responses={200: ReviewItemOutSerializer, 409: ConflictOutSerializer}, tags=["review"],
                   parameters=[OpenApiParameter("item_id", int, OpenApiParameter.PATH)])
    def post(self, request: Request, item_id: int) -> Response:
        body = SkipInSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        item = services.review_item_skip(item_id=item_id, actor=actor_for(request),
                                         version=body.validated_data["version"])
        return Response(ReviewItemOutSerializer(item).data)
