"""Routes under /api/v1/ for this app."""

from django.urls import URLPattern, URLResolver, path

from ftops.loop import api

urlpatterns: list[URLPattern | URLResolver] = [
    path("curation/triggers", api.TriggersApi.as_view(), name="api-curation-triggers"),
    path("loop/cycles", api.CyclesApi.as_view(), name="api-loop-cycles"),
    path("loop/cycles/<int:cycle_id>", api.CycleDetailApi.as_view(), name="api-loop-cycle"),
]
