"""Routes under /api/v1/ for this app."""

from django.urls import URLPattern, URLResolver, path

from ftops.datasets import api

urlpatterns: list[URLPattern | URLResolver] = [
    path("examples", api.ExamplesApi.as_view(), name="api-examples"),
    path("examples/schema-migrations", api.SchemaMigrationApi.as_view(), name="api-examples-schema-migrate"),
    path("examples/<int:example_id>", api.ExampleDetailApi.as_view(), name="api-example"),
    path("examples/<int:example_id>/paraphrases", api.ExampleParaphrasesApi.as_view(), name="api-example-paraphrases"),
    path("datasets", api.VersionsApi.as_view(), name="api-datasets"),
    path("datasets/<str:number>", api.VersionDetailApi.as_view(), name="api-dataset"),
    path("datasets/<str:number>/export", api.VersionExportApi.as_view(), name="api-dataset-export"),
    path("curation/runs", api.CurationRunsApi.as_view(), name="api-curation-runs"),
    path("curation/runs/<int:run_id>", api.CurationRunDetailApi.as_view(), name="api-curation-run"),
]
