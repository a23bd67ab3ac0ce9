"""Root-level routes: the ``.well-known`` documents, ``/mcp/*`` and the publishing pages."""

from django.urls import URLPattern, URLResolver, path

from ftops.discovery import api, views

app_name = "discovery"
urlpatterns: list[URLPattern | URLResolver] = [
    path(".well-known/mcp-training-data.json", views.well_known, name="well_known"),
    path(".well-known/mcp-training-data/<slug:name>.json", views.well_known_service, name="well_known_service"),
    path("mcp/training-dataset", api.TrainingDatasetApi.as_view(), name="training_dataset"),
    path("mcp/test-dataset", api.TestDatasetApi.as_view(), name="test_dataset"),
    path("mcp/schema", api.SchemaApi.as_view(), name="schema"),
    path("discovery/publishing/", views.publishing_list, name="publishing_list"),
    path("discovery/publishing/<slug:name>/", views.publishing_edit, name="publishing_edit"),
]
