"""A lean keep-alive HTTP/1.1 client for the gateway's non-streamed upstream calls.

Why not httpx/httpcore here: per request httpcore walks its whole pool, polls every idle
socket (a syscall that releases the GIL, so the call writer thread takes it for up to a
switch interval each time) and runs h11 in Python; at concurrency 32 that was most of the
gateway's own CPU (bench/gateway.py). This client is an ``asyncio.Protocol`` with the
``httptools`` parser (C, the one uvicorn uses): one write per request, the answer parsed as
it arrives, idle connections kept in a LIFO stack.

The outbound guard is the same as everywhere else (rule 15): a connection is opened only to
an address ``resolve_checked`` accepts under the policy of ``FTOPS_OUTBOUND_ALLOW``, resolved
and checked at connect time; TLS verifies the certificate against the URL's host name. Only
admin-registered upstream URLs reach this module. Streamed calls keep using httpx.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools

from ftops.common.outbound import OutboundError, OutboundPolicy, check_url, resolve_checked


class ConnectFailed(ConnectionError):
    """No connection to the upstream could be opened (refused, unreachable); safe to retry."""


class ConnectTimedOut(TimeoutError):
    """Opening the connection took longer than the connect timeout; safe to retry."""


class ProtocolBroken(ConnectionError):
    """The connection closed or sent something that is not HTTP/1.1 before the answer was complete."""


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int

    @property
    def host_header(self) -> bytes:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return (host if self.port == default else f"{host}:{self.port}").encode("idna")


class _Connection(asyncio.Protocol):
    """One keep-alive connection: a request at a time, its answer parsed by httptools."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.waiter: asyncio.Future[None] | None = None
        self.status = 0
        self.chunks: list[bytes] = []
        self.size = 0
        self.received_any = False
        self.keep_alive = False
        self.framed = False  # the answer says where it ends (content-length or chunked)
        self.headers_done = False

    # --- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not its subclasses

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:  # bytes nobody asked for: the connection cannot be trusted to reuse
            self.close()
            return
        self.received_any = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            cause = exc.__context__  # a callback's own exception (the size cap) comes wrapped
            self._fail(cause if isinstance(cause, OutboundError)
                       else ProtocolBroken(f"the upstream sent a malformed answer ({exc})"))

    def eof_received(self) -> bool | None:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if exc is None and self.headers_done and not self.framed:
            self.on_message_complete()  # an answer delimited by the end of the connection (HTTP/1.0 style)
            return
        self._fail(ProtocolBroken("the upstream closed the connection before the answer was complete"))

    # --- httptools callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.chunks = []
        self.size = 0
        self.framed = False
        self.headers_done = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() in (b"content-length", b"transfer-encoding"):
            self.framed = True

    def on_headers_complete(self) -> None:
        self.headers_done = True
        if self.parser.get_status_code() in (204, 304) or 100 <= self.parser.get_status_code() < 200:
            self.framed = True  # no body at all

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > self.max_bytes:
            raise OutboundError(f"the answer is over {self.max_bytes} bytes", kind="too_large")
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.framed and not self.closed and self.parser.should_keep_alive()
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- request side -----------------------------------------------------------------------

    def _fail(self, exc: Exception) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    async def request(self, head: bytes, content: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.status = 0
        self.received_any = False
        self.keep_alive = False
        self.headers_done = False
        self.transport.write(head + content)
        try:
            await self.waiter
        finally:
            self.waiter = None
        body = b"".join(self.chunks)
        self.chunks = []
        return self.status, body


class Http1Pool:
    """Keep-alive connections to one origin (an admin-registered upstream), at most ``max_connections``."""

    def __init__(self, base_url: str, *, policy: OutboundPolicy, max_connections: int, connect_timeout_s: float,
                 max_bytes: int, ssl_context: ssl.SSLContext | None = None) -> None:
        scheme, host, port = check_url(base_url)
        self.origin = Origin(scheme, host, port)
        self.base_path = urlsplit(base_url).path.rstrip("/")
        self.policy = policy
        self.connect_timeout_s = connect_timeout_s
        self.max_bytes = max_bytes
        self.ssl_context = ssl_context if scheme == "https" else None
        if scheme == "https" and self.ssl_context is None:
            self.ssl_context = ssl.create_default_context()
        self._idle: deque[_Connection] = deque()
        self._slots = asyncio.Semaphore(max_connections)
        self._all: set[_Connection] = set()

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        origin = self.origin
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                addresses = await resolve_checked(origin.host, origin.port, self.policy,
                                                  url=f"{origin.scheme}://{origin.host}:{origin.port}")
                failure: Exception | None = None
                for address in addresses:
                    try:
                        _, protocol = await loop.create_connection(
                            lambda: _Connection(self.max_bytes), address, origin.port, ssl=self.ssl_context,
                            server_hostname=origin.host if self.ssl_context is not None else None)
                    except OSError as exc:
                        failure = exc
                        continue
                    self._all.add(protocol)
                    return protocol
        except TimeoutError as exc:
            raise ConnectTimedOut(f"connecting to {origin.host}:{origin.port} took over "
                                  f"{self.connect_timeout_s:g}s") from exc
        raise ConnectFailed(f"cannot connect to {origin.host}:{origin.port}: {failure}") from failure

    def _idle_connection(self) -> _Connection | None:
        while self._idle:
            conn = self._idle.pop()  # most recently used first: the one least likely to have timed out
            if not conn.closed:
                return conn
            self._all.discard(conn)
        return None

    def head(self, path: str, content_length: int, authorization: bytes) -> bytes:
        return b"".join((b"POST ", (self.base_path + path).encode(), b" HTTP/1.1\r\nhost: ", self.origin.host_header,
                         b"\r\nauthorization: ", authorization,
                         b"\r\ncontent-type: application/json\r\naccept: application/json\r\ncontent-length: ",
                         str(content_length).encode(), b"\r\n\r\n"))

    async def post(self, path: str, content: bytes, *, authorization: bytes) -> tuple[int, bytes]:
        """POST ``content`` to ``base_url + path``: (status, body). A reused connection the upstream
        had closed meanwhile is replaced once by a new one (nothing of the request was answered)."""
        head = self.head(path, len(content), authorization)
        async with self._slots:
            conn = self._idle_connection()
            reused = conn is not None
            if conn is None:
                conn = await self._connect()
            while True:
                try:
                    status, body = await conn.request(head, content)
                except ProtocolBroken:
                    self._all.discard(conn)
                    if reused and not conn.received_any:
                        reused = False
                        conn = await self._connect()
                        continue
                    raise
                except BaseException:
                    conn.close()  # cancelled or failed mid-answer: its state is unknown
                    self._all.discard(conn)
                    raise
                break
            if conn.keep_alive and not conn.closed:
                self._idle.append(conn)
            else:
                conn.close()
                self._all.discard(conn)
            return status, body

    async def aclose(self) -> None:
        for conn in list(self._all):
            conn.close()
        self._all.clear()
        self._idle.clear()
        await asyncio.sleep(0)

