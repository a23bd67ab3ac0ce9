"""Routes under /api/v1/ for this app."""

from django.urls import URLPattern, URLResolver, path

from ftops.common import api

urlpatterns: list[URLPattern | URLResolver] = [
    path("keys", api.ApiKeysApi.as_view(), name="api-keys"),
    path("keys/<int:key_id>/revoke", api.ApiKeyRevokeApi.as_view(), name="api-key-revoke"),
    path("audit", api.AuditEventsApi.as_view(), name="api-audit"),
]
