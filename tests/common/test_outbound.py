"""The guarded outbound client against real sockets: a local HTTP server, a silent listener."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ftops.common.env import SettingsError
from ftops.common.models import AuditAction, AuditEvent
from ftops.common.outbound import (
    PUBLIC_MESSAGE,
    OutboundError,
    OutboundPolicy,
    OutboundRefused,
    address_refusal,
    guarded_async_client,
    guarded_get,
    parse_allow_list,
    record_refusal,
    redact_url,
    transport_errors,
)

LOOPBACK = parse_allow_list(["127.0.0.1/32"])
NOBODY = OutboundPolicy()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[str]

    def do_GET(self) -> None:
        self.server.seen.append(self.path)  # type: ignore[attr-defined]
        if self.path.startswith("/redirect?to="):
            self.send_response(302)
            self.send_header("Location", self.path.split("=", 1)[1])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/big":
            self._body(b"x" * 100_000)
        elif self.path == "/big-unannounced":
            # No Content-Length: only counting the bytes as they arrive can stop it.
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            for _ in range(100):
                self.wfile.write(b"y" * 1000)
        else:
            self._body(b"hello from " + self.path.encode())

    def _body(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def base(httpd: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}"


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel completes the handshake) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


def refused(url: str, **kwargs: Any) -> OutboundRefused:
    with pytest.raises(OutboundRefused) as caught:
        guarded_get(url, timeout_s=5, **kwargs)
    return caught.value


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize(("url", "why"), [
    ("http://127.0.0.1:{port}/", "loopback"),
    ("http://localhost:{port}/", "loopback"),
    ("http://2130706433:{port}/", "loopback"),  # 127.0.0.1 written as one number
    ("http://[::ffff:127.0.0.1]:{port}/", "loopback"),  # IPv4-mapped IPv6
    ("http://[::1]:{port}/", "loopback"),
    ("http://10.1.2.3/", "private"),
    ("http://192.168.0.1/", "private"),
    ("http://172.16.0.1/", "private"),
    ("http://100.64.0.1/", "CGNAT"),
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://[fd00:ec2::254]/latest/meta-data/", "metadata"),
    ("http://metadata.google.internal/computeMetadata/v1/", "metadata"),
    ("http://168.63.129.16/", "metadata"),  # Azure's wire server: a public address, refused by name
    ("http://0.0.0.0:{port}/", "unspecified"),
    ("http://224.0.0.1/", "multicast"),
    ("http://240.0.0.1/", "private"),
    ("http://[2002:7f00:1::]/", "loopback"),  # 6to4 wrapping 127.0.0.1
    ("http://[64:ff9b::a00:1]/", "private"),  # NAT64 wrapping 10.0.0.1
])
def test_internal_targets_are_refused_with_one_public_message(server: ThreadingHTTPServer, url: str,
                                                              why: str) -> None:
    error = refused(url.format(port=server.server_address[1]), policy=NOBODY)

    assert str(error) == PUBLIC_MESSAGE
    assert error.kind == "refused"
    assert why in error.reason
    assert server.seen == []  # type: ignore[attr-defined]  # nothing reached the live loopback server


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x", "gopher://127.0.0.1:70/", "http:///x"])
def test_other_schemes_and_hostless_urls_are_refused(url: str) -> None:
    assert str(refused(url, policy=NOBODY)) == PUBLIC_MESSAGE


def test_unreachable_and_refused_look_the_same_to_the_caller(server: ThreadingHTTPServer) -> None:
    live_but_refused = refused(base(server) + "/", policy=NOBODY)
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    with pytest.raises(OutboundError) as caught:
        guarded_get(f"http://127.0.0.1:{closed}/", timeout_s=5, policy=LOOPBACK)

    assert caught.value.kind == "unreachable"
    assert str(caught.value) == str(live_but_refused) == PUBLIC_MESSAGE
    assert caught.value.reason != live_but_refused.reason


# ---------------------------------------------------------------- the allow-list


def test_an_allow_listed_loopback_server_answers(server: ThreadingHTTPServer) -> None:
    fetched = guarded_get(base(server) + "/hello", timeout_s=5, policy=LOOPBACK)

    assert (fetched.status_code, fetched.content, fetched.redirects) == (200, b"hello from /hello", 0)
    assert server.seen == ["/hello"]  # type: ignore[attr-defined]


def test_the_allow_list_comes_from_settings(server: ThreadingHTTPServer, settings: Any) -> None:
    settings.FTOPS_OUTBOUND_ALLOW = []
    assert refused(base(server) + "/").kind == "refused"

    settings.FTOPS_OUTBOUND_ALLOW = ["127.0.0.0/8"]
    assert guarded_get(base(server) + "/ok", timeout_s=5).status_code == 200


def test_an_allowed_host_name_opens_what_it_resolves_to(server: ThreadingHTTPServer) -> None:
    by_name = parse_allow_list(["localhost"])
    port = server.server_address[1]

    assert guarded_get(f"http://localhost:{port}/named", timeout_s=5, policy=by_name).status_code == 200
    assert refused(f"http://127.0.0.1:{port}/by-address", policy=by_name).kind == "refused"


def test_a_broad_network_does_not_open_the_metadata_address() -> None:
    broad = parse_allow_list(["169.254.0.0/16"])
    exact = parse_allow_list(["169.254.169.254/32"])
    metadata = ipaddress.ip_address("169.254.169.254")

    assert broad.refusal(metadata, host="169.254.169.254") is not None
    assert broad.refusal(ipaddress.ip_address("169.254.1.1"), host="169.254.1.1") is None
    assert exact.refusal(metadata, host="169.254.169.254") is None
    assert parse_allow_list(["metadata.internal.example"]).refusal(metadata, host="metadata.internal.example")


@pytest.mark.parametrize("entry", ["127.0.0.1/8", "10.0.0.0/33", "http://mcp.example", "mcp.example:8000",
                                   "bad_host", "-x.example", "300.1.1.1"])
def test_bad_allow_list_entries_stop_start_up(entry: str) -> None:
    with pytest.raises(SettingsError) as caught:
        parse_allow_list(["127.0.0.1/32", entry])
    assert "FTOPS_OUTBOUND_ALLOW" in str(caught.value)
    assert repr(entry) in str(caught.value)


def test_allow_list_entries_parse() -> None:
    policy = parse_allow_list([" 127.0.0.1 ", "10.20.0.0/16", "fd00::/8", "MCP.Internal.Example.", ""])
    assert policy.hosts == frozenset({"mcp.internal.example"})
    assert [str(n) for n in policy.networks] == ["127.0.0.1/32", "10.20.0.0/16", "fd00::/8"]


@pytest.mark.parametrize(("address", "refused_as"), [
    ("8.8.8.8", None),
    ("2606:4700:4700::1111", None),
    ("127.0.0.1", "loopback"),
    ("::ffff:10.0.0.1", "private"),
    ("::ffff:8.8.8.8", None),
    ("::127.0.0.1", "loopback"),  # IPv4-compatible (deprecated) form
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback"),  # Teredo client 127.0.0.1
    ("fe80::1", "link-local"),
    ("ff02::1", "multicast"),
    ("::", "unspecified"),
    ("198.18.0.1", "private"),  # benchmarking range
    ("192.0.2.1", "private"),  # documentation range
])
def test_address_classification(address: str, refused_as: str | None) -> None:
    why = address_refusal(ipaddress.ip_address(address))
    assert (why is None) == (refused_as is None)
    if refused_as is not None:
        assert why is not None and refused_as in why


# ---------------------------------------------------------------- redirects, time, size


def test_a_redirect_is_followed_and_each_hop_checked(server: ThreadingHTTPServer) -> None:
    port = server.server_address[1]
    fetched = guarded_get(f"{base(server)}/redirect?to=/final", timeout_s=5, policy=LOOPBACK)
    assert (fetched.status_code, fetched.content, fetched.redirects) == (200, b"hello from /final", 1)

    # 127.0.0.2 is loopback too but outside the allowed /32: the second hop is refused.
    error = refused(f"{base(server)}/redirect?to=http://127.0.0.2:{port}/internal", policy=LOOPBACK)
    assert "127.0.0.2" in error.reason
    metadata = refused(f"{base(server)}/redirect?to=http://169.254.169.254/latest/", policy=LOOPBACK)
    assert "metadata" in metadata.reason
    assert server.seen == ["/redirect?to=/final", "/final", f"/redirect?to=http://127.0.0.2:{port}/internal",  # type: ignore[attr-defined]
                           "/redirect?to=http://169.254.169.254/latest/"]


def test_redirects_are_bounded(server: ThreadingHTTPServer) -> None:
    loop = f"{base(server)}/redirect?to=/redirect?to=/redirect?to=/end"
    with pytest.raises(OutboundError) as caught:
        guarded_get(loop, timeout_s=5, policy=LOOPBACK, max_redirects=1)
    assert caught.value.kind == "redirects"
    assert str(caught.value) == PUBLIC_MESSAGE


def test_a_server_that_never_answers_is_cut_off(silent_port: int) -> None:
    with pytest.raises(OutboundError) as caught:
        guarded_get(f"http://127.0.0.1:{silent_port}/", timeout_s=1, policy=LOOPBACK)
    assert caught.value.kind == "timeout"
    assert str(caught.value) == PUBLIC_MESSAGE


@pytest.mark.parametrize("path", ["/big", "/big-unannounced"])
def test_bodies_over_the_cap_are_refused(server: ThreadingHTTPServer, path: str) -> None:
    with pytest.raises(OutboundError) as caught:
        guarded_get(base(server) + path, timeout_s=5, policy=LOOPBACK, max_bytes=10_000)
    assert caught.value.kind == "too_large"
    assert str(caught.value) == PUBLIC_MESSAGE
    assert guarded_get(base(server) + path, timeout_s=5, policy=LOOPBACK, max_bytes=200_000).content[:1] in b"xy"


# ---------------------------------------------------------------- the client for SDKs, sync use, audit


def test_the_client_checks_at_connect_time_not_only_up_front(server: ThreadingHTTPServer) -> None:
    """An SDK using the client directly never calls check_url; the transport still refuses."""
    async def fetch() -> list[OutboundError]:
        async with guarded_async_client(timeout_s=5, policy=NOBODY) as client:
            with pytest.raises(OutboundRefused):
                await client.get(f"http://localhost:{server.server_address[1]}/")
            return transport_errors(client)

    errors = asyncio.run(fetch())
    assert [e.kind for e in errors] == ["refused"]
    assert server.seen == []  # type: ignore[attr-defined]


def test_guarded_get_works_under_a_running_event_loop(server: ThreadingHTTPServer) -> None:
    async def inside() -> int:
        return guarded_get(base(server) + "/loop", timeout_s=5, policy=LOOPBACK).status_code

    assert asyncio.run(inside()) == 200


def test_redact_url_drops_credentials() -> None:
    assert redact_url("https://user:secret@mcp.example:8443/mcp?x=1") == "https://mcp.example:8443/mcp?x=1"
    assert redact_url("http://[::1]:80/") == "http://[::1]:80/"


@pytest.mark.django_db
def test_a_refusal_is_audited_with_the_reason() -> None:
    from ftops.common.actors import Actor

    error = refused("http://user:pw@169.254.169.254/latest/meta-data/", policy=NOBODY)
    record_refusal(error, by=Actor.system("tester"), purpose="test")

    row = AuditEvent.objects.get(action=AuditAction.OUTBOUND_REFUSED)
    assert (row.actor, row.object_id) == ("tester", "169.254.169.254")
    assert row.detail["purpose"] == "test"
    assert row.detail["kind"] == "refused"
    assert "metadata" in row.detail["reason"]
    assert "pw" not in row.detail["url"]
