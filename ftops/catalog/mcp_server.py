"""The catalog as an MCP server over streamable HTTP, with the official ``mcp`` SDK.

``ftops/asgi.py`` wraps the Django application in ``CatalogMcpApp``: requests under
``/mcp/server/`` go to an SDK ``Server`` (stateless streamable HTTP, JSON responses), everything
else to Django. Agent frameworks list the tools there as they would any MCP server's:

* ``/mcp/server/`` lists every service's tools, named ``<service>.<tool>``;
* ``/mcp/server/<service>/`` lists one service's tools under their own names.

Each tool carries the JSON Schema of its current schema version (``inputSchema``) and, in its
``_meta``, the service, the tool and the schema version number. The catalog describes tools;
it does not run them: ``tools/call`` answers with a tool error that says so and where to call.

Every request needs an API key (``Authorization: Bearer ftk_...`` or ``X-API-Key``), any role:
the schemas are the public ``/mcp/schema``'s, the key only says who asks. A refused key is
counted, audited and throttled (429) as on the API (``ftops.common.auth.auth_failure``). The Host header is
checked against ``ALLOWED_HOSTS`` like Django's own requests (DNS rebinding).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from types import SimpleNamespace
from typing import Any

import mcp_types as types
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.http.request import split_domain_port, validate_host
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings

from ftops.catalog.models import Service, Tool

log = logging.getLogger(__name__)

MOUNT = "/mcp/server"
PAGE_SIZE = 200
SCOPE_KEY = "ftops_mcp"  # where the wrapper leaves the service asked for (and the caller) in the ASGI scope

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


# --------------------------------------------------------------------------- reads (sync, the ORM)


def catalog_tools(*, service: str | None) -> list[types.Tool]:
    """Tools with a current schema version: one service's under their names, or all as ``service.tool``."""
    qs = (Tool.objects.filter(current_version__isnull=False).select_related("service", "current_version")
          .order_by("service__name", "name"))
    if service:
        qs = qs.filter(service__name=service)
    out: list[types.Tool] = []
    for tool in qs:
        version = tool.current_version
        if version is None:  # pragma: no cover - filtered above
            continue
        schema = version.parameters if isinstance(version.parameters, dict) else {}
        try:
            out.append(types.Tool.model_validate({
                "name": tool.name if service else f"{tool.service.name}.{tool.name}",
                "description": version.description or tool.description or None,
                "inputSchema": {"type": "object", **schema},
                "_meta": {"ftops/service": tool.service.name, "ftops/tool": tool.name,
                          "ftops/schema_version": version.number}}))
        except ValueError:  # a schema the SDK's model refuses: left out of the list, not the whole list
            log.warning("MCP server: tool %s.%s has a schema the SDK refuses", tool.service.name, tool.name)
    return out


def _tool_exists(*, service: str | None, name: str) -> tuple[str, str] | None:
    """(service, tool) for a name as listed, or None."""
    if service:
        svc, tool = service, name
    elif "." in name:
        svc, tool = name.split(".", 1)
    else:
        return None
    return (svc, tool) if Tool.objects.filter(service__name=svc, name=tool).exists() else None


def _service_exists(name: str) -> bool:
    return Service.objects.filter(name=name).exists()


def _caller_for(secret: str) -> str | None:
    from ftops.common.selectors import api_key_for_secret

    key = api_key_for_secret(secret) if secret else None
    return f"api_key:{key.name}" if key is not None else None


def _auth_failed(scope: Scope, secret: str) -> int:
    """Count and audit a refused key as the API does (``ftops.common.auth.auth_failure``): the
    seconds to wait when this address or key prefix is over the limit, else 0."""
    from ftops.common.auth import auth_failure
    from ftops.common.selectors import api_key_by_hash
    from ftops.common.services import KEY_PREFIX, hash_secret

    revoked = api_key_by_hash(hash_secret(secret)) if secret.startswith(KEY_PREFIX) else None
    reason = "missing" if not secret else "revoked" if revoked is not None else "unknown"
    client = scope.get("client") or ("", 0)
    request = SimpleNamespace(path=str(scope.get("path") or ""), method=str(scope.get("method") or ""),
                              META={"REMOTE_ADDR": client[0] or ""})
    return auth_failure(request, reason=reason, secret=secret, api_key=revoked)


def _orm(func: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """``func`` in asgiref's thread for sync code. That thread lives outside Django's request cycle,
    which would close or recycle its connection: each call closes it itself (a few reads per request)."""

    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        finally:
            connection.close()

    return sync_to_async(run)


# --------------------------------------------------------------------------- the SDK server


def _asked_service(ctx: Any) -> str | None:
    scope = getattr(getattr(ctx, "request", None), "scope", None) or {}
    return (scope.get(SCOPE_KEY) or {}).get("service") or None


async def _list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
    tools = await _orm(catalog_tools)(service=_asked_service(ctx))
    cursor = getattr(params, "cursor", None) if params is not None else None
    # Our own cursors are short ASCII numbers; anything else starts from the top.
    start = int(cursor) if cursor and cursor.isascii() and cursor.isdigit() and len(cursor) <= 9 else 0
    page = tools[start:start + PAGE_SIZE]
    more = start + PAGE_SIZE < len(tools)
    return types.ListToolsResult(tools=page, next_cursor=str(start + PAGE_SIZE) if more else None)


async def _call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
    service = _asked_service(ctx)
    found = await _orm(_tool_exists)(service=service, name=params.name)
    if found is None:
        text = f"unknown tool {params.name!r}: tools/list names the tools this catalog describes"
    else:
        text = (f"{found[0]}.{found[1]} is described here, not executed: this is ftops' tool catalog. "
                f"Call the tool on the {found[0]} service itself.")
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


def build_server() -> Server[Any]:
    return Server("ftops-catalog", version="1",
                  instructions="The tool catalog of ftops: every service's tools with their JSON Schemas. "
                               "Tools are listed here, not executed.",
                  on_list_tools=_list_tools, on_call_tool=_call_tool)


# --------------------------------------------------------------------------- the ASGI wrapper


async def _json(send: Send, status: int, code: str, message: str, headers: list[tuple[bytes, bytes]] | None = None,
                ) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers") or []:
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return ""


class CatalogMcpApp:
    """ASGI: ``/mcp/server/...`` to the catalog's MCP server, anything else to ``inner`` (Django).

    The SDK's session manager needs a running task group: it is started on the first MCP request
    (or at the ASGI lifespan's start-up, where the server sends one) and stopped at shutdown.
    """

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner
        self.manager = StreamableHTTPSessionManager(
            app=build_server(), stateless=True, json_response=True,
            # The Host header is checked below against ALLOWED_HOSTS, as Django checks it.
            security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False))
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        path = str(scope.get("path") or "")
        if scope["type"] == "http" and (path == MOUNT or path.startswith(MOUNT + "/")):
            await self._mcp(scope, receive, send, path[len(MOUNT):].strip("/"))
            return
        await self.inner(scope, receive, send)

    async def _ensure_started(self) -> None:
        async with self._lock:
            if self._task is not None:
                return
            started = asyncio.Event()

            async def run() -> None:
                async with self.manager.run():
                    started.set()
                    await self._stop.wait()

            self._task = asyncio.create_task(run(), name="ftops-mcp-session-manager")
            waiter = asyncio.create_task(started.wait())
            await asyncio.wait({self._task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if not started.is_set():
                waiter.cancel()
                await self._task  # raises what stopped it

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._task is not None:
                    self._stop.set()
                    await self._task
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _mcp(self, scope: Scope, receive: Receive, send: Send, rest: str) -> None:
        domain, _port = split_domain_port(_header(scope, b"host"))
        if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
            await _json(send, 400, "bad_request", "this host is not served here (ALLOWED_HOSTS)")
            return
        auth = _header(scope, b"authorization")
        secret = auth[7:].strip() if auth.startswith("Bearer ") else _header(scope, b"x-api-key").strip()
        caller = await _orm(_caller_for)(secret)
        if caller is None:
            wait = await _orm(_auth_failed)(scope, secret)
            if wait:
                await _json(send, 429, "throttled", "too many failed authentications; try again later",
                            headers=[(b"retry-after", str(wait).encode())])
                return
            await _json(send, 401, "unauthenticated", "an API key is needed: Authorization: Bearer <key>",
                        headers=[(b"www-authenticate", b"Bearer")])
            return
        if scope.get("method") == "GET":
            # Stateless with JSON answers: no server-to-client stream to offer, and an SSE stream
            # held open per GET would let any key pin connections. The transport allows a 405.
            await _json(send, 405, "method_not_allowed", "POST JSON-RPC requests here; no SSE stream is offered",
                        headers=[(b"allow", b"POST")])
            return
        service = rest or None
        if service is not None and ("/" in service or not await _orm(_service_exists)(service)):
            await _json(send, 404, "not_found", f"no service {service!r} in the catalog; /mcp/server/ lists all")
            return
        await self._ensure_started()
        scope = dict(scope)
        scope[SCOPE_KEY] = {"service": service, "caller": caller}
        await self.manager.handle_request(scope, receive, send)


def catalog_mcp_wrap(inner: ASGIApp) -> CatalogMcpApp:
    return CatalogMcpApp(inner)
