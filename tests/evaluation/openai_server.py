"""A local chat-completions endpoint speaking OpenAI's documented protocol, for adapter tests.

The "model" behind it is a policy function the test supplies: request body in, either a
tool-call list, a text, or an HTTP error out. Every request body is kept for assertions.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

Policy = Callable[[dict[str, Any]], dict[str, Any]]


def tool_calls(*calls: tuple[str, Any]) -> dict[str, Any]:
    """A policy answer with calls; arguments given as a dict are JSON-encoded, a str is sent as is."""
    return {"tool_calls": [{"id": f"call_{i}", "type": "function",
                            "function": {"name": name,
                                         "arguments": args if isinstance(args, str) else json.dumps(args)}}
                           for i, (name, args) in enumerate(calls)]}


class FakeOpenAI:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.policy: Policy = lambda body: {"content": "Hello."}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                fake.requests.append(body)
                fake.headers.append({k.lower(): v for k, v in self.headers.items()})
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request"}})
                answer = fake.policy(body)
                if "status" in answer:
                    return self._send(answer["status"], {"error": {"message": answer.get("message", "boom"),
                                                                   "type": "server_error"}})
                message: dict[str, Any] = {"role": "assistant", "content": answer.get("content")}
                if answer.get("tool_calls"):
                    message["tool_calls"] = answer["tool_calls"]
                self._send(200, {
                    "id": f"chatcmpl-{len(fake.requests)}", "object": "chat.completion", "created": 1700000000,
                    "model": body.get("model", ""),
                    "choices": [{"index": 0, "message": message,
                                 "finish_reason": "tool_calls" if answer.get("tool_calls") else "stop"}],
                    "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
                })
                return None

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI()
    server.start()
    try:
        yield server
    finally:
        server.stop()
