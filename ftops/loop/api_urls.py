"""Routes under /api/v1/ for this app."""

from django.urls import URLPattern, URLResolver, path

from ftops.loop import api

urlpatterns: list[URLPattern | URLResolver] = [
    path("curation/triggers", api.TriggersApi.as_view(), name="api-curation-triggers"),
]
