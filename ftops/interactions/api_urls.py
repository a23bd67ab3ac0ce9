"""Routes under /api/v1/ for this app."""

from django.urls import URLPattern, URLResolver, path

from ftops.interactions import api

urlpatterns: list[URLPattern | URLResolver] = [
    path("interactions", api.InteractionsApi.as_view(), name="api-interactions"),
    path("interaction-batches/<int:batch_id>", api.IngestBatchDetailApi.as_view(), name="api-interaction-batch"),
    path("interactions/<str:external_id>", api.InteractionDetailApi.as_view(), name="api-interaction"),
    path(
        "interactions/<str:external_id>/feedback",
        api.InteractionFeedbackApi.as_view(),
        name="api-interaction-feedback",
    ),
]
