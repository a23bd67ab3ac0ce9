"""Routes under /api/v1/ for the catalog."""

from django.urls import URLPattern, URLResolver, path

from ftops.catalog import api

urlpatterns: list[URLPattern | URLResolver] = [
    path("catalog/import", api.CatalogImportApi.as_view(), name="catalog-import"),
    path("catalog/imports/<int:job_id>", api.CatalogImportJobApi.as_view(), name="catalog-import-job"),
    path("catalog/services", api.ServicesApi.as_view(), name="catalog-services"),
    path("catalog/services/<slug:service>/tools", api.ServiceToolsApi.as_view(), name="catalog-tools"),
    path("catalog/services/<slug:service>/tools/<str:tool>/versions", api.ToolVersionsApi.as_view(),
         name="catalog-tool-versions"),
]
