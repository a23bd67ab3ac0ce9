"""The gateway's lean HTTP/1.1 pool against real sockets: keep-alive, a connection the upstream
closed while idle, chunked answers, the answer cap and the outbound guard."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from ftops.common.outbound import OutboundError, OutboundRefused, parse_allow_list
from ftops.gateway.http1 import ConnectFailed, Http1Pool, ProtocolBroken

LOCAL = parse_allow_list(["127.0.0.1/32"])
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(
        b"content-length:"))
    return head, await reader.readexactly(length)


def answer(body: bytes, *, close: bool = False) -> bytes:
    connection = b"connection: close\r\n" if close else b""
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n" + connection + \
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body


async def serve(handler: Handler) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def pool_for(port: int, **kwargs: Any) -> Http1Pool:
    options: dict[str, Any] = {"policy": LOCAL, "max_connections": 8, "connect_timeout_s": 2.0,
                               "max_bytes": 1024 * 1024, **kwargs}
    return Http1Pool(f"http://127.0.0.1:{port}/v1", **options)


def test_keep_alive_reuses_one_connection_and_sends_the_request_as_written() -> None:
    connections: list[int] = []
    seen: list[tuple[bytes, bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        while True:
            try:
                head, body = await read_request(reader)
            except asyncio.IncompleteReadError:
                break
            seen.append((head, body))
            writer.write(answer(b'{"n": %d}' % len(seen)))
            await writer.drain()
        writer.close()

    async def main() -> list[tuple[int, bytes]]:
        server, port = await serve(handler)
        pool = pool_for(port)
        try:
            return [await pool.post("/chat/completions", b'{"x": %d}' % i, authorization=b"Bearer sk-1")
                    for i in range(3)]
        finally:
            await pool.aclose()
            server.close()

    results = asyncio.run(main())
    assert results == [(200, b'{"n": 1}'), (200, b'{"n": 2}'), (200, b'{"n": 3}')]
    assert len(connections) == 1
    head, body = seen[0]
    assert head.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert b"\r\nauthorization: Bearer sk-1\r\n" in head and body == b'{"x": 0}'


def test_a_connection_closed_while_idle_is_replaced_and_connection_close_is_honoured() -> None:
    connections: list[int] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        await read_request(reader)
        # The first connection claims keep-alive, then the server drops it while it is idle.
        writer.write(answer(b'{"ok": true}', close=len(connections) == 2))
        await writer.drain()
        writer.close()

    async def main() -> list[tuple[int, bytes]]:
        server, port = await serve(handler)
        pool = pool_for(port)
        try:
            first = await pool.post("/chat/completions", b"{}", authorization=b"Bearer k")
            await asyncio.sleep(0.1)  # the close reaches the idle connection
            second = await pool.post("/chat/completions", b"{}", authorization=b"Bearer k")
            third = await pool.post("/chat/completions", b"{}", authorization=b"Bearer k")
            return [first, second, third]
        finally:
            await pool.aclose()
            server.close()

    assert asyncio.run(main()) == [(200, b'{"ok": true}')] * 3
    assert len(connections) == 3


def test_chunked_answer_and_the_answer_cap() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                await read_request(reader)
            except asyncio.IncompleteReadError:
                break
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                         b"5\r\n{\"a\":\r\n" + b"3\r\n 1}\r\n0\r\n\r\n")
            await writer.drain()
        writer.close()

    async def main() -> tuple[tuple[int, bytes], Exception]:
        server, port = await serve(handler)
        pool, small = pool_for(port), pool_for(port, max_bytes=6)
        try:
            ok = await pool.post("/chat/completions", b"{}", authorization=b"Bearer k")
            try:
                await small.post("/chat/completions", b"{}", authorization=b"Bearer k")
            except Exception as exc:
                return ok, exc
            raise AssertionError("the cap did not hold")
        finally:
            await pool.aclose()
            await small.aclose()
            server.close()

    ok, error = asyncio.run(main())
    assert ok == (200, b'{"a": 1}')
    assert isinstance(error, OutboundError) and error.kind == "too_large"


def test_an_answer_ended_by_closing_the_connection_and_one_cut_short() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _, body = await read_request(reader)
        if body == b"cut":  # announces 100 bytes, sends 5, closes
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nhello")
        else:  # no length, no chunks: the body ends with the connection
            writer.write(b"HTTP/1.0 200 OK\r\ncontent-type: application/json\r\n\r\n{\"old\": true}")
        await writer.drain()
        writer.close()

    async def main() -> tuple[tuple[int, bytes], Exception | None]:
        server, port = await serve(handler)
        pool = pool_for(port)
        try:
            whole = await pool.post("/chat/completions", b"{}", authorization=b"Bearer k")
            try:
                await pool.post("/chat/completions", b"cut", authorization=b"Bearer k")
            except ProtocolBroken as exc:
                return whole, exc
            return whole, None
        finally:
            await pool.aclose()
            server.close()

    whole, cut = asyncio.run(main())
    assert whole == (200, b'{"old": true}')
    assert isinstance(cut, ProtocolBroken)


def test_the_outbound_guard_refuses_an_address_outside_the_allow_list() -> None:
    async def main() -> None:
        pool = Http1Pool("http://127.0.0.2:9/v1", policy=LOCAL, max_connections=1, connect_timeout_s=1,
                         max_bytes=1024)
        await pool.post("/chat/completions", b"{}", authorization=b"Bearer k")

    with pytest.raises(OutboundRefused):
        asyncio.run(main())


def test_nothing_listening_is_a_connect_failure() -> None:
    async def main() -> None:
        server, port = await serve(lambda reader, writer: asyncio.sleep(0))
        server.close()
        await server.wait_closed()
        await pool_for(port).post("/chat/completions", b"{}", authorization=b"Bearer k")

    with pytest.raises(ConnectFailed):
        asyncio.run(main())
