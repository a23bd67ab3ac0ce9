"""Import from live MCP servers started with the official SDK (stdio and streamable HTTP)."""

from __future__ import annotations

import pytest

from ftops.catalog.importers import ImportFailed
from ftops.catalog.models import SchemaChange, Service, Tool, ToolSchemaVersion
from ftops.catalog.services import catalog_import
from tests.catalog.conftest import stdio_command

# The HTTP servers here listen on 127.0.0.1: allowed explicitly, as a deployment would.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("allow_loopback")]

TOOLS = ["create_payment", "get_payment_status", "refund_payment"]


def test_import_from_a_stdio_server_and_reimport_changes_nothing() -> None:
    report = catalog_import(source=stdio_command())

    assert report.fmt == "mcp"
    assert report.services_created == ["acme-payments-mcp"]
    assert sorted(report.tools_created) == [f"acme-payments-mcp.{t}" for t in TOOLS]
    service = Service.objects.get(name="acme-payments-mcp")
    assert service.version == "1.0.0"
    create = Tool.objects.get(service=service, name="create_payment")
    assert create.description == "Charge a customer. amount is in cents."
    params = create.current_version.parameters  # type: ignore[union-attr]
    assert params["required"] == ["amount", "customer_id"]
    assert params["properties"]["amount"]["type"] == "integer"
    assert params["properties"]["amount"]["minimum"] == 1
    assert params["properties"]["currency"]["enum"] == ["USD", "EUR", "GBP"]
    assert params["properties"]["customer_id"]["pattern"] == r"^CUS-\d{5}$"

    again = catalog_import(source=stdio_command())

    assert again.changed is False
    assert again.tools_unchanged == 3
    assert ToolSchemaVersion.objects.count() == 3


def test_import_over_http_then_a_changed_schema_is_a_breaking_version(mcp_http_url: str,
                                                                       mcp_http_v2_url: str) -> None:
    first = catalog_import(source=mcp_http_url)
    assert first.fmt == "mcp-http"
    assert sorted(first.tools_created) == [f"acme-payments-mcp.{t}" for t in TOOLS]
    assert catalog_import(source=mcp_http_url).changed is False

    changed = catalog_import(source=mcp_http_v2_url, service="acme-payments-mcp")

    assert changed.tools_created == []
    assert changed.versions_created == [{"tool": "acme-payments-mcp.refund_payment", "number": 2,
                                         "change": "breaking", "inferred": False}]
    refund = Tool.objects.get(name="refund_payment").current_version
    assert refund is not None and refund.change == SchemaChange.BREAKING
    assert sorted((d["kind"], d["path"]) for d in refund.diff["details"]) == [("new_required", "reason"),
                                                                             ("removed", "amount")]
    assert Service.objects.get(name="acme-payments-mcp").version == "2.0.0"


def test_unreachable_mcp_url_is_a_clear_error() -> None:
    with pytest.raises(ImportFailed) as caught:
        catalog_import(source="http://127.0.0.1:9/mcp")
    assert caught.value.message.startswith("could not list the tools of the MCP server 'http://127.0.0.1:9/mcp'")
    assert Service.objects.count() == 0


def test_a_command_that_is_not_an_mcp_server_is_a_clear_error() -> None:
    with pytest.raises(ImportFailed) as caught:
        catalog_import(source="/nonexistent/ftops-mcp-server --stdio")
    assert "could not list the tools of the MCP server" in caught.value.message
    assert Service.objects.count() == 0


def test_format_mcp_with_a_url_uses_the_http_transport(mcp_http_url: str) -> None:
    report = catalog_import(source=mcp_http_url, fmt="mcp", service="payments-mcp")
    assert report.fmt == "mcp-http"
    assert sorted(report.tools_created) == [f"payments-mcp.{t}" for t in TOOLS]

    with pytest.raises(ImportFailed) as caught:
        catalog_import(source="http://127.0.0.1:9/mcp", fmt="mcp")
    assert "FileNotFoundError" not in caught.value.message
    assert caught.value.message.startswith("could not list the tools of the MCP server 'http://127.0.0.1:9/mcp'")
