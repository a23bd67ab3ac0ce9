"""Routes under /api/v1/ for this app."""

from django.urls import URLPattern, URLResolver, path

from registry import api

V = "registry/versions/<int:version_id>"

urlpatterns: list[URLPattern | URLResolver] = [
    path("registry/versions", api.VersionsApi.as_view(), name="api-registry-versions"),
    path(V, api.VersionDetailApi.as_view(), name="api-registry-version"),
    path(f"{V}/events", api.VersionEventsApi.as_view(), name="api-registry-version-events"),
    path(f"{V}/gates", api.VersionGatesApi.as_view(), name="api-registry-version-gates"),
    path(f"{V}/evaluate", api.VersionEvaluateApi.as_view(), name="api-registry-version-evaluate"),
    path(f"{V}/approve", api.VersionApproveApi.as_view(), name="api-registry-version-approve"),
    path(f"{V}/override", api.VersionOverrideApi.as_view(), name="api-registry-version-override"),
    path(f"{V}/reject", api.VersionRejectApi.as_view(), name="api-registry-version-reject"),
    path(f"{V}/promote", api.VersionPromoteApi.as_view(), name="api-registry-version-promote"),
    path(f"{V}/promote-partial", api.VersionPromotePartialApi.as_view(), name="api-registry-version-promote-partial"),
    path(f"{V}/rollback", api.VersionRollbackApi.as_view(), name="api-registry-version-rollback"),
    path(f"{V}/canary", api.VersionCanaryStartApi.as_view(), name="api-registry-version-canary"),
    path(f"{V}/canary/promote", api.VersionCanaryPromoteApi.as_view(), name="api-registry-version-canary-promote"),
    path(f"{V}/canary/rollback", api.VersionCanaryRollbackApi.as_view(),
         name="api-registry-version-canary-rollback"),
    path("registry/deployments", api.DeploymentsApi.as_view(), name="api-registry-deployments"),
    path("registry/scopes/<slug:scope>/rollback", api.ScopeRollbackApi.as_view(), name="api-registry-scope-rollback"),
    path("registry/critical-scenarios", api.CriticalScenariosApi.as_view(), name="api-registry-critical"),
    path("registry/critical-scenarios/<str:record_id>", api.CriticalScenarioDetailApi.as_view(),
         name="api-registry-critical-detail"),
    path("registry/examples/<int:example_id>/versions", api.ExampleVersionsApi.as_view(),
         name="api-registry-example-versions"),
    path("registry/summary", api.SummaryApi.as_view(), name="api-registry-summary"),
]
