from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from ftops.catalog.models import Service, Tool, ToolSchemaVersion
from ftops.common.models import AuditEvent
from ftops.datasets.models import TrainingExample
from tests.catalog.factories import SHIPPING_PARAMS, openai_tools, shipping_doc

pytestmark = pytest.mark.django_db

IMPORT = "/api/v1/catalog/import"
MakeKey = Callable[..., tuple[APIClient, Any]]


def state() -> tuple[int, int, int, int]:
    return (Service.objects.count(), Tool.objects.count(), ToolSchemaVersion.objects.count(),
            TrainingExample.objects.count())


@pytest.mark.parametrize("role", ["admin", "ml_orchestrator"])
def test_import_documents_with_an_allowed_role(make_key: MakeKey, role: str) -> None:
    client, key = make_key(role)

    response = client.post(IMPORT, {"content": [shipping_doc()], "source": "shipping-team"}, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["format"] == "tool-docs"
    assert body["services_created"] == ["shipping"]
    assert body["tools_created"] == ["shipping.create_label", "shipping.get_latest_order"]
    assert body["examples_created"] == 6
    assert body["changed"] is True
    audit = AuditEvent.objects.get(action="catalog.imported")
    assert (audit.api_key_id, audit.actor, audit.object_id) == (key.pk, f"key:{key.prefix}", "shipping-team")

    again = client.post(IMPORT, {"content": [shipping_doc()], "source": "shipping-team"}, format="json")

    assert again.status_code == 200
    assert again.json()["changed"] is False
    assert again.json()["examples_existing"] == 6
    assert state() == (1, 2, 2, 6)


@pytest.mark.parametrize("role", ["ingest", "reviewer", "approver"])
def test_import_with_a_wrong_role_is_403_with_one_audit_row(make_key: MakeKey, role: str) -> None:
    client, key = make_key(role)

    response = client.post(IMPORT, {"content": openai_tools(), "service": "weather"}, format="json")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    denied = AuditEvent.objects.filter(action="permission.denied")
    assert denied.count() == 1
    assert denied.get().api_key_id == key.pk
    assert denied.get().detail["needed_roles"] == ["admin", "ml_orchestrator"]
    assert not AuditEvent.objects.filter(action="catalog.imported").exists()
    assert state() == (0, 0, 0, 0)


def test_import_without_credentials_is_refused(api_client: APIClient) -> None:
    response = api_client.post(IMPORT, {"content": openai_tools(), "service": "weather"}, format="json")
    assert response.status_code in (401, 403)
    assert state() == (0, 0, 0, 0)


def test_import_input_errors_name_the_field(make_key: MakeKey) -> None:
    client, _ = make_key("admin")

    neither = client.post(IMPORT, {"service": "x"}, format="json")
    assert neither.status_code == 422
    assert neither.json()["error"]["fields"] == {
        "non_field_errors": ["give exactly one of 'url' (an MCP server) or 'content' (inline JSON)"]}

    no_service = client.post(IMPORT, {"content": openai_tools(), "format": "openai-tools"}, format="json")
    assert no_service.status_code == 422
    assert no_service.json()["error"]["fields"] == {"service": ["name the service these tools belong to"]}

    bad_doc = shipping_doc()
    bad_doc["parameters"] = SHIPPING_PARAMS
    bad_doc["training_examples"][0]["correct_parameters"] = {"order_id": "12345", "carrier": "ups"}
    invalid = client.post(IMPORT, {"content": bad_doc}, format="json")
    assert invalid.status_code == 422
    fields = invalid.json()["error"]["fields"]
    assert list(fields) == ["documents[0].training_examples[0]"]

    bad_format = client.post(IMPORT, {"content": {}, "format": "mcp"}, format="json")
    assert bad_format.status_code == 422
    assert "format" in bad_format.json()["error"]["fields"]
    assert state() == (0, 0, 0, 0)
    assert not AuditEvent.objects.filter(action="catalog.imported").exists()


def test_import_from_an_mcp_url_is_accepted_as_a_job(make_key: MakeKey, mcp_http_url: str,
                                                     allow_loopback: None) -> None:
    """The job itself is tested in test_import_jobs.py; here: the answer's shape."""
    client, _ = make_key("ml_orchestrator")

    response = client.post(IMPORT, {"url": mcp_http_url}, format="json")

    assert response.status_code == 202, response.json()
    assert response.json()["status"] == "pending"  # published when the test's transaction commits (never)
    assert response["Location"].endswith(f"/api/v1/catalog/imports/{response.json()['id']}")
    assert state() == (0, 0, 0, 0)


def test_list_endpoints(make_key: MakeKey) -> None:
    admin, _ = make_key("admin")
    admin.post(IMPORT, {"content": [shipping_doc()]}, format="json")
    changed = shipping_doc(parameters={**SHIPPING_PARAMS, "properties": {
        **SHIPPING_PARAMS["properties"], "insured": {"type": "boolean"}}})
    admin.post(IMPORT, {"content": [changed]}, format="json")
    reader, _ = make_key("reviewer")

    services = reader.get("/api/v1/catalog/services")
    assert services.status_code == 200
    assert services.json()["count"] == 1
    assert services.json()["results"][0]["name"] == "shipping"
    assert services.json()["results"][0]["tool_count"] == 2

    tools = reader.get("/api/v1/catalog/services/shipping/tools").json()["results"]
    assert [(t["name"], t["current_version"], t["inferred"], t["version_count"]) for t in tools] == [
        ("create_label", 2, False, 2), ("get_latest_order", 1, True, 1)]

    versions = reader.get("/api/v1/catalog/services/shipping/tools/create_label/versions").json()["results"]
    assert [(v["number"], v["change"]) for v in versions] == [(2, "additive"), (1, "initial")]
    assert versions[0]["diff"]["details"][0]["kind"] == "added"

    missing = reader.get("/api/v1/catalog/services/shipping/tools/nope/versions")
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "service 'shipping' has no tool 'nope'"


def test_catalog_endpoints_are_in_the_openapi_schema(make_key: MakeKey) -> None:
    client, _ = make_key("admin")
    response = client.get("/api/v1/schema", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "post" in paths["/api/v1/catalog/import"]
    assert "get" in paths["/api/v1/catalog/services/{service}/tools/{tool}/versions"]
