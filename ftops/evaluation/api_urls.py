"""Routes under /api/v1/ for this app."""

from django.urls import URLPattern, URLResolver, path

from ftops.evaluation import api

urlpatterns: list[URLPattern | URLResolver] = [
    path("evaluation/suites", api.SuitesApi.as_view(), name="api-evaluation-suites"),
    path("evaluation/runs", api.RunsApi.as_view(), name="api-evaluation-runs"),
    path("evaluation/runs/<int:run_id>", api.RunDetailApi.as_view(), name="api-evaluation-run"),
    path("evaluation/runs/<int:run_id>/cancel", api.RunCancelApi.as_view(), name="api-evaluation-run-cancel"),
    path("evaluation/runs/<int:run_id>/failures", api.RunFailuresApi.as_view(), name="api-evaluation-run-failures"),
    path("evaluation/compare", api.CompareApi.as_view(), name="api-evaluation-compare"),
]
