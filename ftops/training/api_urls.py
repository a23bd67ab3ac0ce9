"""Routes under /api/v1/ for this app."""

from django.urls import URLPattern, URLResolver, path

from ftops.training import api

urlpatterns: list[URLPattern | URLResolver] = [
    path("training/runs", api.TrainingRunsApi.as_view(), name="api-training-runs"),
    path("training/runs/<int:run_id>", api.TrainingRunDetailApi.as_view(), name="api-training-run"),
    path("training/runs/<int:run_id>/cancel", api.TrainingRunCancelApi.as_view(), name="api-training-run-cancel"),
]
