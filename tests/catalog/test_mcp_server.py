"""The catalog as an MCP server: ftops' own ASGI application (``ftops.asgi``'s wrapper around Django) served
by a real uvicorn on 127.0.0.1, spoken to with the mcp SDK's own streamable HTTP client."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import httpx2
import pytest
import uvicorn
from django.core.asgi import get_asgi_application
from django.db import connection

from ftops.catalog.mcp_server import CatalogMcpApp
from ftops.catalog.models import Service
from ftops.catalog.services import catalog_import
from ftops.common.services import api_key_create, api_key_revoke
from tests.catalog.conftest import stdio_command

pytestmark = pytest.mark.django_db(transaction=True)


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # a thread cannot own signals
        return


@pytest.fixture
def served(transactional_db: Any) -> Iterator[str]:
    """ftops' ASGI application (the MCP wrapper around Django) on a real uvicorn; yields its base URL."""
    config = uvicorn.Config(CatalogMcpApp(get_asgi_application()), host="127.0.0.1", port=0, lifespan="on",
                            log_level="warning", access_log=False, loop="asyncio")
    server = _Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(30)
    asyncio.set_event_loop(None)
    if connection.vendor == "postgresql":
        # Django's ASGI handler ran each view in a thread of its own whose connection outlives the
        # request (CONN_MAX_AGE) and the thread: end them, or the test database cannot be dropped.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid()")


@pytest.fixture
def catalog(db: Any) -> None:
    """Two services in the catalog: one imported from a real MCP server (stdio), one by hand."""
    catalog_import(source=stdio_command())
    from tests.datasets.factories import build_shop

    build_shop(with_sequences=False)


def session(url: str, key: str | None) -> Callable[[Callable[[Any], Any]], Any]:
    """Run ``work(client)`` inside an initialised SDK client session against ``url``."""
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    def run(work: Callable[[Any], Any]) -> Any:
        async def go() -> Any:
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            async with httpx2.AsyncClient(headers=headers, timeout=20) as http, \
                    Client(streamable_http_client(url, http_client=http)) as client:
                return await work(client)
        return anyio.run(go)
    return run


def test_tools_list_every_service_with_json_schemas(served: str, catalog: None) -> None:
    key = api_key_create(name="agent", roles=["ml_orchestrator"]).secret

    async def work(client: Any) -> Any:
        page = await client.list_tools()
        return client.server_info, page

    info, page = session(f"{served}/mcp/server/", key)(work)

    assert info.name == "ftops-catalog"
    names = [t.name for t in page.tools]
    assert names[:3] == ["acme-payments-mcp.create_payment", "acme-payments-mcp.get_payment_status",
                         "acme-payments-mcp.refund_payment"]
    assert {n.split(".")[0] for n in names} == {"acme-payments-mcp", "shop"}
    assert len(names) == 3 + Service.objects.get(name="shop").tools.count()
    create = page.tools[0]
    assert create.description == "Charge a customer. amount is in cents."
    assert create.input_schema["type"] == "object"
    assert create.input_schema["required"] == ["amount", "customer_id"]
    assert create.input_schema["properties"]["currency"]["enum"] == ["USD", "EUR", "GBP"]
    assert create.meta["ftops/service"] == "acme-payments-mcp" and create.meta["ftops/schema_version"] == 1
    assert page.next_cursor is None


def test_one_services_tools_under_their_own_names_and_calls_are_not_executed(served: str, catalog: None) -> None:
    key = api_key_create(name="agent", roles=["reviewer"]).secret

    async def work(client: Any) -> Any:
        page = await client.list_tools()
        known = await client.call_tool("refund_payment", {"payment_id": "PAY-000001"})
        unknown = await client.call_tool("drop_tables", {})
        return page, known, unknown

    page, known, unknown = session(f"{served}/mcp/server/acme-payments-mcp/", key)(work)

    assert [t.name for t in page.tools] == ["create_payment", "get_payment_status", "refund_payment"]
    assert known.is_error and "acme-payments-mcp.refund_payment is described here, not executed" in \
        known.content[0].text
    assert unknown.is_error and unknown.content[0].text.startswith("unknown tool 'drop_tables'")


def test_an_api_key_is_needed_and_the_rest_is_still_django(served: str, catalog: None) -> None:
    key = api_key_create(name="agent", roles=["ml_orchestrator"])
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-06-18"}
    with httpx2.Client(timeout=10) as http:
        missing = http.post(f"{served}/mcp/server/", json=body, headers=headers)
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert missing.json()["error"]["code"] == "unauthenticated"
        wrong = http.post(f"{served}/mcp/server/", json=body, headers={**headers, "Authorization": "Bearer ftk_nope"})
        assert wrong.status_code == 401
        unknown = http.post(f"{served}/mcp/server/nope/", json=body,
                            headers={**headers, "Authorization": f"Bearer {key.secret}"})
        assert unknown.status_code == 404 and "no service 'nope'" in unknown.json()["error"]["message"]
        # Django still answers everything else through the same application.
        schema = http.get(f"{served}/mcp/schema", params={"service": "acme-payments-mcp"})
        assert schema.status_code == 200 and len(schema.json()["tools"]) == 3
        api_key_revoke(api_key=key.api_key, actor="test")
        revoked = http.post(f"{served}/mcp/server/", json=body,
                            headers={**headers, "Authorization": f"Bearer {key.secret}"})
        assert revoked.status_code == 401



def test_failed_keys_are_audited_and_throttled_like_the_api(served: str, catalog: None, settings: Any) -> None:
    from ftops.common.models import AuditAction, AuditEvent

    settings.FTOPS_AUTH_FAILURE_LIMIT = 3
    key = api_key_create(name="agent", roles=["reviewer"])
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-06-18",
               "Authorization": "Bearer ftk_guess_nope"}
    with httpx2.Client(timeout=10) as http:
        statuses = [http.post(f"{served}/mcp/server/", json=body, headers=headers).status_code for _ in range(5)]
        assert statuses == [401, 401, 401, 429, 429]
        throttled = http.post(f"{served}/mcp/server/", json=body, headers=headers)
        assert throttled.json()["error"]["code"] == "throttled" and int(throttled.headers["retry-after"]) >= 1
        good = http.post(f"{served}/mcp/server/", json=body,
                         headers={**headers, "Authorization": f"Bearer {key.secret}"})
        assert good.status_code == 200
    rows = AuditEvent.objects.filter(action=AuditAction.AUTH_FAILED).order_by("pk")
    assert {(r.detail["reason"], r.detail["path"], r.ip) for r in rows} == {
        ("unknown", "/mcp/server/", "127.0.0.1"), ("throttled", "/mcp/server/", "127.0.0.1")}


def test_a_host_outside_allowed_hosts_is_refused_before_the_key_is_read(served: str, catalog: None) -> None:
    key = api_key_create(name="agent", roles=["reviewer"])
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-06-18",
               "Authorization": f"Bearer {key.secret}"}
    with httpx2.Client(timeout=10) as http:
        for host in ("evil.example", "127.0.0.1.evil.example", ""):
            refused = http.post(f"{served}/mcp/server/", json=body, headers={**headers, "Host": host})
            assert refused.status_code == 400, host
            assert "ALLOWED_HOSTS" in refused.json()["error"]["message"]
        assert http.post(f"{served}/mcp/server/", json=body, headers=headers).status_code == 200


def test_no_stream_is_held_open_and_a_hostile_cursor_is_a_first_page(served: str, catalog: None) -> None:
    """Stateless, JSON only: a GET (the optional server-to-client SSE stream) is answered 405 at once,
    as the streamable HTTP transport allows, rather than held open for as long as the caller likes."""
    key = api_key_create(name="agent", roles=["reviewer"])
    headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-06-18",
               "Authorization": f"Bearer {key.secret}"}
    with httpx2.Client(timeout=5) as http:
        stream = http.get(f"{served}/mcp/server/", headers=headers)
        assert stream.status_code == 405 and stream.headers["allow"] == "POST"
        for cursor in ("1" * 5000, "\u0661\u0662", "-1"):
            answer = http.post(f"{served}/mcp/server/", headers=headers, json={
                "jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"cursor": cursor}}).json()
            assert "error" not in answer, (cursor[:8], answer)
            assert len(answer["result"]["tools"]) >= 3
