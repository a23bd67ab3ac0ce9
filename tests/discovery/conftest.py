"""Real HTTP servers on 127.0.0.1 that speak (or break) the discovery protocol."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest


def route_key(path_and_query: str) -> str:
    """One spelling per request: the path plus its parameters sorted (clients order them freely)."""
    parts = urlsplit(path_and_query)
    return parts.path + ("?" + urlencode(sorted(parse_qsl(parts.query))) if parts.query else "")


@dataclass
class Served:
    status: int
    body: bytes
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class ProtocolServer:
    """Answers from a table of (path?query -> Served); ``default`` for anything not in it."""

    routes: dict[str, Served] = field(default_factory=dict)
    default: Served | None = None
    requests: list[tuple[str, str]] = field(default_factory=list)  # (path?query, Authorization)
    url: str = ""

    def answer(self, raw_path: str, authorization: str) -> Served:
        self.requests.append((raw_path, authorization))
        found = self.routes.get(route_key(raw_path)) or self.default
        return found or Served(404, b'{"error": {"code": "not_found", "message": "not recorded"}}')


def _handler(server: ProtocolServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served = server.answer(self.path, self.headers.get("Authorization", ""))
            if served.delay_s:
                time.sleep(served.delay_s)
            try:
                self.send_response(served.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(served.body)))
                for name, value in served.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(served.body)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                pass

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def protocol_server() -> Iterator[Callable[..., ProtocolServer]]:
    started: list[ThreadingHTTPServer] = []

    def start(**kwargs: Any) -> ProtocolServer:
        spec = ProtocolServer(**kwargs)
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(spec))
        httpd.daemon_threads = True
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        started.append(httpd)
        spec.url = f"http://127.0.0.1:{httpd.server_address[1]}"
        return spec

    yield start
    for httpd in started:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def dead_url() -> str:
    """A 127.0.0.1 port with nothing listening: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def loopback_allowed(settings: Any) -> None:
    settings.FTOPS_OUTBOUND_ALLOW = ["127.0.0.1/32"]
