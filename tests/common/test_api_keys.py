"""API keys (issue, list, revoke), the audit log, roles and per-key throttling."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.test import override_settings

from ftops.common.models import ApiKey, AuditEvent
from ftops.common.selectors import api_key_for_secret
from ftops.common.services import hash_secret


def post(client: Any, url: str, body: Any = None) -> Any:
    return client.post(url, data=json.dumps(body or {}), content_type="application/json")


def test_admin_creates_key_secret_shown_once_and_hashed(make_key: Any) -> None:
    admin, admin_key = make_key("admin")
    response = post(admin, "/api/v1/keys", {"name": "payments-gateway", "roles": ["ingest"]})
    assert response.status_code == 201
    body = response.json()
    secret = body["secret"]
    assert secret.startswith("ftk_")
    key = ApiKey.objects.get(pk=body["id"])
    assert (key.name, key.roles, key.hashed_secret) == ("payments-gateway", ["ingest"], hash_secret(secret))
    assert secret not in json.dumps(list(ApiKey.objects.values()), default=str)
    listed = admin.get("/api/v1/keys").json()
    assert listed["count"] == 2
    assert all("secret" not in row and "hashed_secret" not in row for row in listed["results"])
    created = AuditEvent.objects.get(action="api_key.created", object_id=str(key.pk))
    assert (created.actor, created.api_key_id) == (f"key:{admin_key.prefix}", admin_key.pk)
    assert created.detail == {"name": "payments-gateway", "roles": ["ingest"], "prefix": key.prefix}


def test_key_create_validation(make_key: Any) -> None:
    admin, _ = make_key("admin")
    before = ApiKey.objects.count()
    response = post(admin, "/api/v1/keys", {"name": "x", "roles": ["superuser"]})
    assert response.status_code == 422
    assert response.json()["error"]["fields"] == {"roles": {"0": ['"superuser" is not a valid choice.']}}
    assert post(admin, "/api/v1/keys", {"name": "x", "roles": []}).status_code == 422
    assert ApiKey.objects.count() == before


def test_revoked_key_is_refused_and_revocation_is_audited_once(make_key: Any) -> None:
    admin, _ = make_key("admin")
    ingest, key = make_key("ingest", name="old")
    assert ingest.get("/api/v1/interactions").status_code == 200
    first = post(admin, f"/api/v1/keys/{key.pk}/revoke")
    again = post(admin, f"/api/v1/keys/{key.pk}/revoke")
    assert (first.status_code, again.status_code) == (200, 200)
    assert first.json()["is_active"] is False
    assert AuditEvent.objects.filter(action="api_key.revoked", object_id=str(key.pk)).count() == 1
    refused = ingest.get("/api/v1/interactions")
    assert refused.status_code == 401
    assert refused.json()["error"]["message"] == "invalid or revoked API key"
    assert post(admin, "/api/v1/keys/999999/revoke").status_code == 404


def test_non_admin_is_403_with_exactly_one_audit_row(make_key: Any) -> None:
    client, key = make_key("ingest", "reviewer")
    before = ApiKey.objects.count()
    response = post(client, "/api/v1/keys", {"name": "sneaky", "roles": ["admin"]})
    assert response.status_code == 403
    assert response.json()["error"]["message"] == "this endpoint needs one of the roles ['admin']"
    assert ApiKey.objects.count() == before
    rows = list(AuditEvent.objects.filter(action="permission.denied"))
    assert len(rows) == 1
    assert (rows[0].api_key_id, rows[0].object_id, rows[0].detail["path"]) == (key.pk, "ApiKeysApi", "/api/v1/keys")


def test_audit_log_is_admin_only_and_filterable(make_key: Any) -> None:
    admin, _ = make_key("admin")
    reviewer, _ = make_key("reviewer")
    assert reviewer.get("/api/v1/audit").status_code == 403
    page = admin.get("/api/v1/audit", {"action": "permission.denied"}).json()
    assert page["count"] == 1
    assert page["results"][0]["action"] == "permission.denied"
    assert page["results"][0]["object_id"] == "AuditEventsApi"
    all_rows = admin.get("/api/v1/audit").json()
    assert {r["action"] for r in all_rows["results"]} == {"api_key.created", "permission.denied"}


def test_session_staff_user_can_manage_keys(client: Any, admin_user: Any) -> None:
    client.force_login(admin_user)
    response = client.post("/api/v1/keys", data=json.dumps({"name": "ui", "roles": ["reviewer"]}),
                           content_type="application/json")
    assert response.status_code == 201
    assert AuditEvent.objects.get(action="api_key.created").actor == "admin"


@pytest.fixture
def clear_cache() -> Any:
    cache.clear()
    yield
    cache.clear()


def test_throttle_gives_429_per_key(make_key: Any, clear_cache: Any) -> None:
    slow = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api_key": "2/min"}}
    with override_settings(REST_FRAMEWORK=slow):
        first, _ = make_key("reviewer", name="first")
        second, _ = make_key("reviewer", name="second")
        codes = [first.get("/api/v1/interactions").status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        throttled = first.get("/api/v1/interactions")
        assert throttled.json()["error"]["code"] == "throttled"
        assert int(throttled["Retry-After"]) > 0
        assert second.get("/api/v1/interactions").status_code == 200  # another key has its own budget


def test_create_api_key_command_prints_secret_once(db: Any) -> None:
    out = StringIO()
    call_command("create_api_key", "etl", "--role", "ingest", "--role", "reviewer", stdout=out)
    lines = out.getvalue().splitlines()
    secret = lines[-1]
    key = api_key_for_secret(secret)
    assert key is not None
    assert (key.name, key.roles) == ("etl", ["ingest", "reviewer"])
    assert lines[0] == f"created API key {key.pk} 'etl' prefix {key.prefix} roles ingest,reviewer"
    assert AuditEvent.objects.get(action="api_key.created").actor == "cli"
    with pytest.raises(CommandError, match="unknown role"):
        call_command("create_api_key", "bad", "--role", "root", stdout=StringIO())
    out = StringIO()
    call_command("revoke_api_key", key.prefix, stdout=out)
    assert out.getvalue().strip() == f"API key {key.pk} 'etl' ({key.prefix}) revoked"
    assert api_key_for_secret(secret) is None
