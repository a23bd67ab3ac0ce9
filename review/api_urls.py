"""Routes under /api/v1/ for this app."""

from django.urls import path

from review import api

urlpatterns = [
    path("review/items", api.ReviewQueueApi.as_view(), name="api-review-items"),
    path("review/items/<int:item_id>", api.ReviewItemApi.as_view(), name="api-review-item"),
    path("review/items/<int:item_id>/claim", api.ReviewClaimApi.as_view(), name="api-review-claim"),
    path("review/items/<int:item_id>/release", api.ReviewReleaseApi.as_view(), name="api-review-release"),
    path("review/items/<int:item_id>/submit", api.ReviewSubmitApi.as_view(), name="api-review-submit"),
    path("review/items/<int:item_id>/reject", api.ReviewRejectApi.as_view(), name="api-review-reject"),
    path("review/items/<int:item_id>/skip", api.ReviewSkipApi.as_view(), name="api-review-skip"),
]
